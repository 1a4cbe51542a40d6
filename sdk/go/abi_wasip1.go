//go:build wasip1

package pdk

// The JSON ABI v1 itself: the host functions the kit imports (module
// "wasmdeck") and the exports the host calls. Go's linker keeps only the
// imports a plugin reaches, so an unused host API is not imported.

import "unsafe"

//go:wasmimport wasmdeck set_output
func hostSetOutput(ptr unsafe.Pointer, n uint32)

//go:wasmimport wasmdeck set_error
func hostSetError(ptr unsafe.Pointer, n uint32)

//go:wasmimport wasmdeck log
func hostLog(level int32, ptr unsafe.Pointer, n uint32)

//go:wasmimport wasmdeck response_read
func hostResponseRead(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport wasmdeck config_get
func hostConfigGet(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport wasmdeck http_request
func hostHTTPRequest(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport wasmdeck ws_connect
func hostWSConnect(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport wasmdeck ws_send
func hostWSSend(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport wasmdeck ws_recv
func hostWSRecv(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport wasmdeck ws_close
func hostWSClose(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport wasmdeck process_run
func hostProcessRun(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport wasmdeck kv_get
func hostKVGet(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport wasmdeck kv_set
func hostKVSet(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport wasmdeck kv_delete
func hostKVDelete(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport wasmdeck kv_list
func hostKVList(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport wasmdeck event_publish
func hostEventPublish(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport wasmdeck plugin_call
func hostPluginCall(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport wasmdeck state_get
func hostStateGet(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport wasmdeck state_set
func hostStateSet(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport wasmdeck state_delete
func hostStateDelete(ptr unsafe.Pointer, n uint32) int32

//go:wasmimport wasmdeck state_list
func hostStateList(ptr unsafe.Pointer, n uint32) int32

// data is the address of b's bytes (nil for an empty slice: the host
// accepts address 0 with length 0).
func data(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

// Buffers handed to the host by alloc, by address. Go's collector does not
// move objects; keeping each buffer referenced here until dealloc stops it
// from freeing one while the host writes into it.
var allocated = map[uintptr][]byte{}

//go:wasmexport alloc
func wasmdeckAlloc(n int32) unsafe.Pointer {
	if n < 1 {
		n = 1
	}
	buf := make([]byte, n)
	ptr := unsafe.Pointer(unsafe.SliceData(buf))
	allocated[uintptr(ptr)] = buf
	return ptr
}

//go:wasmexport dealloc
func wasmdeckDealloc(ptr unsafe.Pointer, n int32) {
	delete(allocated, uintptr(ptr))
}

//go:wasmexport init
func wasmdeckInit() int64 {
	if registered == nil {
		panic("pdk: the plugin registered nothing (call pdk.Register from an init function)")
	}
	return int64(uintptr(data(metadata)))<<32 | int64(len(metadata))
}

//go:wasmexport execute
func wasmdeckExecute(ptr unsafe.Pointer, n int32) int32 {
	// The request must lie in a buffer that alloc handed out.
	buf, ok := allocated[uintptr(ptr)]
	if !ok || n < 0 || int(n) > len(buf) {
		setError("invalid request: it is not inside memory from alloc")
		return 1
	}
	// A copy: the host reuses its buffer, and a Request may outlive the call.
	raw := append([]byte(nil), buf[:n]...)
	output, message, code := run(raw)
	if code != 0 {
		setError(message)
		return code
	}
	if output != nil {
		hostSetOutput(data(output), uint32(len(output)))
	}
	return 0
}

// What save_state returned, kept until the host has read it.
var saved []byte

//go:wasmexport save_state
func wasmdeckSaveState() int64 {
	saved = nil
	if registered != nil && registered.SaveState != nil {
		saved = registered.SaveState()
	}
	return int64(uintptr(data(saved)))<<32 | int64(len(saved))
}

//go:wasmexport restore_state
func wasmdeckRestoreState(ptr unsafe.Pointer, n int32) int32 {
	if registered == nil || registered.RestoreState == nil {
		return 0
	}
	var state []byte
	if n > 0 {
		buf, ok := allocated[uintptr(ptr)]
		if !ok || int(n) > len(buf) {
			setError("invalid state: it is not inside memory from alloc")
			return 1
		}
		state = append([]byte(nil), buf[:n]...)
	}
	if err := registered.RestoreState(state); err != nil {
		setError(err.Error())
		return 1
	}
	return 0
}

func setError(message string) {
	b := []byte(message)
	hostSetError(data(b), uint32(len(b)))
}

func writeLog(level Level, message string) {
	b := []byte(message)
	hostLog(int32(level), data(b), uint32(len(b)))
}

// hostFunc is a host function taking a JSON request (see callHost).
type hostFunc func(ptr unsafe.Pointer, n uint32) int32

// rawCall sends request to fn and reads the response it keeps.
func rawCall(fn hostFunc, request []byte) ([]byte, error) {
	n := fn(data(request), uint32(len(request)))
	if n < 0 {
		return nil, &HostError{Kind: "invalid_response", Message: "the host answered a negative length"}
	}
	response := make([]byte, n)
	got := hostResponseRead(data(response), uint32(n))
	if got < 0 || got > n {
		return nil, &HostError{Kind: "invalid_response", Message: "the host's response length is out of range"}
	}
	return response[:got], nil
}
