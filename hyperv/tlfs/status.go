package tlfs

import "fmt"

// Status is a hypervisor status code (HV_STATUS), the low 16 bits of a
// hypercall result. A non-success Status is an error; StatusSuccess.Err()
// is nil.
//
// Values: TLFS "Hypercall status codes"; Linux include/hyperv/hvgdk_mini.h
// HV_STATUS_*.
type Status uint16

// Hypervisor status values. The ones a VMBus transport meets are
// InvalidConnectionID (no such port; a 5.0 INITIATE_CONTACT on a host that
// only knows connection id 1), InsufficientBuffers and InsufficientMemory
// (the port's message queue is full: retry with back-off), InvalidParameter
// (bad message type or payload size), InvalidAlignment (input not 8-byte
// aligned or crossing a page) and AccessDenied (no PostMessages or
// SignalEvents privilege).
const (
	StatusSuccess                     Status = 0x0000
	StatusInvalidHypercallCode        Status = 0x0002
	StatusInvalidHypercallInput       Status = 0x0003
	StatusInvalidAlignment            Status = 0x0004
	StatusInvalidParameter            Status = 0x0005
	StatusAccessDenied                Status = 0x0006
	StatusInvalidPartitionState       Status = 0x0007
	StatusOperationDenied             Status = 0x0008
	StatusUnknownProperty             Status = 0x0009
	StatusPropertyValueOutOfRange     Status = 0x000A
	StatusInsufficientMemory          Status = 0x000B
	StatusInvalidPartitionID          Status = 0x000D
	StatusInvalidVPIndex              Status = 0x000E
	StatusNotFound                    Status = 0x0010
	StatusInvalidPortID               Status = 0x0011
	StatusInvalidConnectionID         Status = 0x0012
	StatusInsufficientBuffers         Status = 0x0013
	StatusNotAcknowledged             Status = 0x0014
	StatusInvalidVPState              Status = 0x0015
	StatusAcknowledged                Status = 0x0016
	StatusInvalidSaveRestoreState     Status = 0x0017
	StatusInvalidSynICState           Status = 0x0018
	StatusObjectInUse                 Status = 0x0019
	StatusNoResources                 Status = 0x001D
	StatusProcessorFeatureUnsupported Status = 0x0020
	StatusTimeOut                     Status = 0x0078
)

var statusNames = map[Status]string{
	StatusSuccess:                     "HV_STATUS_SUCCESS",
	StatusInvalidHypercallCode:        "HV_STATUS_INVALID_HYPERCALL_CODE",
	StatusInvalidHypercallInput:       "HV_STATUS_INVALID_HYPERCALL_INPUT",
	StatusInvalidAlignment:            "HV_STATUS_INVALID_ALIGNMENT",
	StatusInvalidParameter:            "HV_STATUS_INVALID_PARAMETER",
	StatusAccessDenied:                "HV_STATUS_ACCESS_DENIED",
	StatusInvalidPartitionState:       "HV_STATUS_INVALID_PARTITION_STATE",
	StatusOperationDenied:             "HV_STATUS_OPERATION_DENIED",
	StatusUnknownProperty:             "HV_STATUS_UNKNOWN_PROPERTY",
	StatusPropertyValueOutOfRange:     "HV_STATUS_PROPERTY_VALUE_OUT_OF_RANGE",
	StatusInsufficientMemory:          "HV_STATUS_INSUFFICIENT_MEMORY",
	StatusInvalidPartitionID:          "HV_STATUS_INVALID_PARTITION_ID",
	StatusInvalidVPIndex:              "HV_STATUS_INVALID_VP_INDEX",
	StatusNotFound:                    "HV_STATUS_NOT_FOUND",
	StatusInvalidPortID:               "HV_STATUS_INVALID_PORT_ID",
	StatusInvalidConnectionID:         "HV_STATUS_INVALID_CONNECTION_ID",
	StatusInsufficientBuffers:         "HV_STATUS_INSUFFICIENT_BUFFERS",
	StatusNotAcknowledged:             "HV_STATUS_NOT_ACKNOWLEDGED",
	StatusInvalidVPState:              "HV_STATUS_INVALID_VP_STATE",
	StatusAcknowledged:                "HV_STATUS_ACKNOWLEDGED",
	StatusInvalidSaveRestoreState:     "HV_STATUS_INVALID_SAVE_RESTORE_STATE",
	StatusInvalidSynICState:           "HV_STATUS_INVALID_SYNIC_STATE",
	StatusObjectInUse:                 "HV_STATUS_OBJECT_IN_USE",
	StatusNoResources:                 "HV_STATUS_NO_RESOURCES",
	StatusProcessorFeatureUnsupported: "HV_STATUS_PROCESSOR_FEATURE_NOT_SUPPORTED",
	StatusTimeOut:                     "HV_STATUS_TIME_OUT",
}

// String returns the TLFS name, or the hex value for an unknown code.
func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("HV_STATUS(0x%04x)", uint16(s))
}

// Error implements error. Calling it on StatusSuccess is legal but a
// success should travel as a nil error: use Err.
func (s Status) Error() string { return "hypervisor: " + s.String() }

// Err returns nil for StatusSuccess and s otherwise, so a hypercall
// wrapper can write `return StatusFromResult(rax).Err()`.
func (s Status) Err() error {
	if s == StatusSuccess {
		return nil
	}
	return s
}

// Transient reports whether the guest should retry the same hypercall
// after a back-off: the message queue of the port was full
// (INSUFFICIENT_BUFFERS) or the hypervisor was short of memory
// (INSUFFICIENT_MEMORY). Linux drivers/hv/connection.c vmbus_post_msg
// retries both; FreeBSD vmbus_msghc_exec does the same.
func (s Status) Transient() bool {
	return s == StatusInsufficientBuffers || s == StatusInsufficientMemory
}
