"""What the obs-websocket test server's OBS holds, and the requests that read and change it.

Response fields, status codes and comments follow obs-websocket's protocol
document (5.x.x, RPC 1) and, where it is silent, what obs-websocket does.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Plausible versions: the protocol document read is 5.x.x as of obs-websocket 5.7.3.
OBS_STUDIO_VERSION = "31.1.2"
OBS_WEBSOCKET_VERSION = "5.7.3"
RPC_VERSION = 1


class Status:
    SUCCESS = 100
    MISSING_REQUEST_TYPE = 203
    UNKNOWN_REQUEST_TYPE = 204
    MISSING_REQUEST_FIELD = 300
    MISSING_REQUEST_DATA = 301
    INVALID_REQUEST_FIELD_TYPE = 401
    REQUEST_FIELD_OUT_OF_RANGE = 402
    REQUEST_FIELD_EMPTY = 403
    OUTPUT_RUNNING = 500
    OUTPUT_NOT_RUNNING = 501
    RESOURCE_NOT_FOUND = 600


class Subscription:
    GENERAL = 1 << 0
    CONFIG = 1 << 1
    SCENES = 1 << 2
    INPUTS = 1 << 3
    TRANSITIONS = 1 << 4
    FILTERS = 1 << 5
    OUTPUTS = 1 << 6
    SCENE_ITEMS = 1 << 7
    MEDIA_INPUTS = 1 << 8
    VENDORS = 1 << 9
    UI = 1 << 10
    CANVASES = 1 << 11
    ALL = (1 << 12) - 1  # every non-high-volume category, the default of Identify


class RequestError(Exception):
    """A request refused with a RequestStatus code and an optional comment."""

    def __init__(self, code: int, comment: str = "") -> None:
        super().__init__(comment or str(code))
        self.code = code
        self.comment = comment


@dataclass
class Transition:
    name: str
    kind: str
    fixed: bool
    configurable: bool
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))


Event = tuple[int, str, dict[str, Any]]  # (intent, eventType, eventData)


def is_unsigned(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _timecode(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


class ObsState:
    """What OBS would hold: scenes, transitions, the record and stream outputs.

    Touched only on the server's event loop; request handlers return the
    events they cause, and the server sends those after the response.
    """

    def __init__(self, scenes: list[str] | None = None) -> None:
        # In the order OBS's scene list shows them, top first.
        names = scenes or ["Starting Soon", "Live", "Be Right Back", "Ending"]
        self.scenes: dict[str, str] = {name: str(uuid.uuid4()) for name in names}
        self.program_scene = names[0]
        self.transitions = [
            Transition("Fade", "fade_transition", fixed=False, configurable=False),
            Transition("Cut", "cut_transition", fixed=True, configurable=False),
            Transition("Swipe", "swipe_transition", fixed=False, configurable=True),
        ]
        self.transition = self.transitions[0]
        self.transition_duration = 300
        self.record_started: float | None = None
        self.stream_started: float | None = None
        self.record_directory = "/home/obs/Videos"
        self.last_record_path: str | None = None
        self.canvas_uuid = str(uuid.uuid4())

    # -- helpers ------------------------------------------------------------------

    @staticmethod
    def _string(data: dict[str, Any] | None, key: str) -> str:
        """Validate a required non-empty string field the way obs-websocket does."""
        if data is None:
            raise RequestError(
                Status.MISSING_REQUEST_DATA, "Your request data is missing or invalid (non-object)"
            )
        if data.get(key) is None:
            raise RequestError(
                Status.MISSING_REQUEST_FIELD, f"Your request is missing the `{key}` field."
            )
        value = data[key]
        if not isinstance(value, str):
            raise RequestError(
                Status.INVALID_REQUEST_FIELD_TYPE, f"The field value of `{key}` must be a string."
            )
        if not value:
            raise RequestError(
                Status.REQUEST_FIELD_EMPTY, f"The field value of `{key}` must not be empty."
            )
        return value

    @staticmethod
    def _elapsed_ms(started: float | None) -> int:
        return 0 if started is None else int((time.monotonic() - started) * 1000)

    def _record_event(self, state: str, active: bool, path: str | None) -> Event:
        data = {"outputActive": active, "outputState": state, "outputPath": path}
        return (Subscription.OUTPUTS, "RecordStateChanged", data)

    @staticmethod
    def _stream_event(state: str, active: bool) -> Event:
        return (
            Subscription.OUTPUTS,
            "StreamStateChanged",
            {"outputActive": active, "outputState": state},
        )

    # -- general ------------------------------------------------------------------

    def GetVersion(self, data: dict[str, Any] | None) -> tuple[dict[str, Any], list[Event]]:
        return {
            "obsVersion": OBS_STUDIO_VERSION,
            "obsWebSocketVersion": OBS_WEBSOCKET_VERSION,
            "rpcVersion": RPC_VERSION,
            "availableRequests": REQUEST_TYPES,
            "supportedImageFormats": ["bmp", "jpeg", "jpg", "png"],
            "platform": "ubuntu",
            "platformDescription": "Ubuntu 24.04 LTS",
        }, []

    # -- scenes -------------------------------------------------------------------

    def GetSceneList(self, data: dict[str, Any] | None) -> tuple[dict[str, Any], list[Event]]:
        canvas = (data or {}).get("canvasUuid")
        if canvas is not None and canvas != self.canvas_uuid:
            raise RequestError(
                Status.RESOURCE_NOT_FOUND, f"No canvas was found by the UUID of `{canvas}`."
            )
        count = len(self.scenes)
        # obs-websocket numbers scenes bottom-up (the last in OBS's list is
        # index 0) and returns them in index order.
        scenes = [
            {"sceneIndex": count - position - 1, "sceneName": name, "sceneUuid": scene_uuid}
            for position, (name, scene_uuid) in enumerate(self.scenes.items())
        ]
        scenes.reverse()
        return {
            "currentProgramSceneName": self.program_scene,
            "currentProgramSceneUuid": self.scenes[self.program_scene],
            "currentPreviewSceneName": None,  # studio mode is off
            "currentPreviewSceneUuid": None,
            "scenes": scenes,
        }, []

    def GetCurrentProgramScene(
        self, data: dict[str, Any] | None
    ) -> tuple[dict[str, Any], list[Event]]:
        name, scene_uuid = self.program_scene, self.scenes[self.program_scene]
        return {
            "sceneName": name,
            "sceneUuid": scene_uuid,
            "currentProgramSceneName": name,
            "currentProgramSceneUuid": scene_uuid,
        }, []

    def SetCurrentProgramScene(self, data: dict[str, Any] | None) -> tuple[None, list[Event]]:
        return None, self.switch_scene(self._find_scene(data))

    def _find_scene(self, data: dict[str, Any] | None) -> str:
        # Like obs-websocket: a valid sceneUuid wins, else a valid sceneName.
        fields = data or {}
        scene_uuid, name = fields.get("sceneUuid"), fields.get("sceneName")
        if isinstance(scene_uuid, str) and scene_uuid:
            for scene, known in self.scenes.items():
                if known == scene_uuid:
                    return scene
            raise RequestError(
                Status.RESOURCE_NOT_FOUND, f"No source was found by the UUID of `{scene_uuid}`."
            )
        if isinstance(name, str) and name:
            if name in self.scenes:
                return name
            raise RequestError(
                Status.RESOURCE_NOT_FOUND,
                f"No source was found by the name of `{name}` within the canvas `Main`.",
            )
        raise RequestError(
            Status.MISSING_REQUEST_FIELD,
            "Your request must contain at least one of the following fields: "
            "`sceneName` with optional `canvasUuid` or `sceneUuid`.",
        )

    def switch_scene(self, name: str) -> list[Event]:
        if name == self.program_scene:
            return []
        self.program_scene = name
        data = {"sceneName": name, "sceneUuid": self.scenes[name]}
        return [(Subscription.SCENES, "CurrentProgramSceneChanged", data)]

    # -- transitions --------------------------------------------------------------

    def GetSceneTransitionList(
        self, data: dict[str, Any] | None
    ) -> tuple[dict[str, Any], list[Event]]:
        return {
            "currentSceneTransitionName": self.transition.name,
            "currentSceneTransitionUuid": self.transition.uuid,
            "currentSceneTransitionKind": self.transition.kind,
            "transitions": [
                {
                    "transitionName": t.name,
                    "transitionUuid": t.uuid,
                    "transitionKind": t.kind,
                    "transitionFixed": t.fixed,
                    "transitionConfigurable": t.configurable,
                }
                for t in self.transitions
            ],
        }, []

    def GetCurrentSceneTransition(
        self, data: dict[str, Any] | None
    ) -> tuple[dict[str, Any], list[Event]]:
        t = self.transition
        return {
            "transitionName": t.name,
            "transitionUuid": t.uuid,
            "transitionKind": t.kind,
            "transitionFixed": t.fixed,
            "transitionDuration": None if t.fixed else self.transition_duration,
            "transitionConfigurable": t.configurable,
            "transitionSettings": {} if t.configurable else None,
        }, []

    def SetCurrentSceneTransition(self, data: dict[str, Any] | None) -> tuple[None, list[Event]]:
        name = self._string(data, "transitionName")
        for transition in self.transitions:
            if transition.name == name:
                changed = transition is not self.transition
                self.transition = transition
                event_data = {"transitionName": name, "transitionUuid": transition.uuid}
                return None, [
                    (Subscription.TRANSITIONS, "CurrentSceneTransitionChanged", event_data)
                ] * changed
        raise RequestError(Status.RESOURCE_NOT_FOUND, "No scene transition was found by that name.")

    def SetCurrentSceneTransitionDuration(
        self, data: dict[str, Any] | None
    ) -> tuple[None, list[Event]]:
        key = "transitionDuration"
        if data is None:
            raise RequestError(
                Status.MISSING_REQUEST_DATA, "Your request data is missing or invalid (non-object)"
            )
        value = data.get(key)
        if value is None:
            raise RequestError(
                Status.MISSING_REQUEST_FIELD, f"Your request is missing the `{key}` field."
            )
        if not is_number(value):
            raise RequestError(
                Status.INVALID_REQUEST_FIELD_TYPE, f"The field value of `{key}` must be a number."
            )
        if not 50 <= value <= 20000:
            raise RequestError(
                Status.REQUEST_FIELD_OUT_OF_RANGE, f"The field value of `{key}` is out of range."
            )
        self.transition_duration = int(value)
        return None, []

    # -- record -------------------------------------------------------------------

    def GetRecordStatus(self, data: dict[str, Any] | None) -> tuple[dict[str, Any], list[Event]]:
        ms = self._elapsed_ms(self.record_started)
        return {
            "outputActive": self.record_started is not None,
            "outputPaused": False,
            "outputTimecode": _timecode(ms),
            "outputDuration": ms,
            "outputBytes": ms * 750,  # ~6 Mbit/s, so the number moves like a real recording
        }, []

    def StartRecord(self, data: dict[str, Any] | None) -> tuple[None, list[Event]]:
        if self.record_started is not None:
            raise RequestError(Status.OUTPUT_RUNNING)
        return None, self._start_record()

    def StopRecord(self, data: dict[str, Any] | None) -> tuple[dict[str, Any], list[Event]]:
        if self.record_started is None:
            raise RequestError(Status.OUTPUT_NOT_RUNNING)
        events = self._stop_record()
        return {"outputPath": self.last_record_path}, events

    def ToggleRecord(self, data: dict[str, Any] | None) -> tuple[dict[str, Any], list[Event]]:
        if self.record_started is None:
            return {"outputActive": True}, self._start_record()
        return {"outputActive": False}, self._stop_record()

    def _start_record(self) -> list[Event]:
        self.record_started = time.monotonic()
        stamp = time.strftime("%Y-%m-%d %H-%M-%S")
        self.last_record_path = f"{self.record_directory}/{stamp}.mkv"
        return [
            self._record_event("OBS_WEBSOCKET_OUTPUT_STARTING", False, None),
            self._record_event("OBS_WEBSOCKET_OUTPUT_STARTED", True, self.last_record_path),
        ]

    def _stop_record(self) -> list[Event]:
        self.record_started = None
        return [
            self._record_event("OBS_WEBSOCKET_OUTPUT_STOPPING", False, None),
            self._record_event("OBS_WEBSOCKET_OUTPUT_STOPPED", False, self.last_record_path),
        ]

    # -- stream -------------------------------------------------------------------

    def GetStreamStatus(self, data: dict[str, Any] | None) -> tuple[dict[str, Any], list[Event]]:
        ms = self._elapsed_ms(self.stream_started)
        return {
            "outputActive": self.stream_started is not None,
            "outputReconnecting": False,
            "outputTimecode": _timecode(ms),
            "outputDuration": ms,
            "outputCongestion": 0.0,
            "outputBytes": ms * 750,
            "outputSkippedFrames": 0,
            "outputTotalFrames": ms * 60 // 1000,
        }, []

    def StartStream(self, data: dict[str, Any] | None) -> tuple[None, list[Event]]:
        if self.stream_started is not None:
            raise RequestError(Status.OUTPUT_RUNNING)
        return None, self._start_stream()

    def StopStream(self, data: dict[str, Any] | None) -> tuple[None, list[Event]]:
        if self.stream_started is None:
            raise RequestError(Status.OUTPUT_NOT_RUNNING)
        return None, self._stop_stream()

    def ToggleStream(self, data: dict[str, Any] | None) -> tuple[dict[str, Any], list[Event]]:
        if self.stream_started is None:
            return {"outputActive": True}, self._start_stream()
        return {"outputActive": False}, self._stop_stream()

    def _start_stream(self) -> list[Event]:
        self.stream_started = time.monotonic()
        return [
            self._stream_event("OBS_WEBSOCKET_OUTPUT_STARTING", False),
            self._stream_event("OBS_WEBSOCKET_OUTPUT_STARTED", True),
        ]

    def _stop_stream(self) -> list[Event]:
        self.stream_started = None
        return [
            self._stream_event("OBS_WEBSOCKET_OUTPUT_STOPPING", False),
            self._stream_event("OBS_WEBSOCKET_OUTPUT_STOPPED", False),
        ]

    # -- dispatch -----------------------------------------------------------------

    def handle(self, request_type: object, data: object) -> tuple[int, str, Any, list[Event]]:
        """Run one request: (status code, comment, responseData or None, events)."""
        if data is not None and not isinstance(data, dict):
            return (
                Status.INVALID_REQUEST_FIELD_TYPE,
                "Your request data is not an object.",
                None,
                [],
            )
        if not isinstance(request_type, str) or not request_type:
            return (
                Status.MISSING_REQUEST_TYPE,
                "Your request's `requestType` may not be empty.",
                None,
                [],
            )
        handler: Callable[[dict[str, Any] | None], tuple[Any, list[Event]]] | None = (
            getattr(self, request_type, None) if request_type in REQUEST_TYPES else None
        )
        if handler is None:
            return Status.UNKNOWN_REQUEST_TYPE, "Your request type is not valid.", None, []
        try:
            response, events = handler(data)
        except RequestError as exc:
            return exc.code, exc.comment, None, []
        return Status.SUCCESS, "", response, events


REQUEST_TYPES = [
    "GetVersion",
    "GetSceneList",
    "GetCurrentProgramScene",
    "SetCurrentProgramScene",
    "GetSceneTransitionList",
    "GetCurrentSceneTransition",
    "SetCurrentSceneTransition",
    "SetCurrentSceneTransitionDuration",
    "GetRecordStatus",
    "StartRecord",
    "StopRecord",
    "ToggleRecord",
    "GetStreamStatus",
    "StartStream",
    "StopStream",
    "ToggleStream",
]
