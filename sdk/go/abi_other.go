//go:build !wasip1

package pdk

// Outside WebAssembly (go vet, go test on the build machine) there is no
// host: the kit compiles, output and errors go nowhere, and every host
// call fails with the kind "unavailable".

import "unsafe"

type hostFunc func(ptr unsafe.Pointer, n uint32) int32

func unavailable(unsafe.Pointer, uint32) int32 { return -1 }

var (
	hostConfigGet    hostFunc = unavailable
	hostHTTPRequest  hostFunc = unavailable
	hostWSConnect    hostFunc = unavailable
	hostWSSend       hostFunc = unavailable
	hostWSRecv       hostFunc = unavailable
	hostWSClose      hostFunc = unavailable
	hostProcessRun   hostFunc = unavailable
	hostKVGet        hostFunc = unavailable
	hostKVSet        hostFunc = unavailable
	hostKVDelete     hostFunc = unavailable
	hostKVList       hostFunc = unavailable
	hostEventPublish hostFunc = unavailable
	hostPluginCall   hostFunc = unavailable
	hostStateGet     hostFunc = unavailable
	hostStateSet     hostFunc = unavailable
	hostStateDelete  hostFunc = unavailable
	hostStateList    hostFunc = unavailable
)

func setError(string) {}

func writeLog(Level, string) {}

func rawCall(hostFunc, []byte) ([]byte, error) {
	return nil, &HostError{Kind: "unavailable", Message: "not running inside wasmdeck"}
}
