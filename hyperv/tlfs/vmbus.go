package tlfs

// VMBus constants at the SynIC layer (Linux drivers/hv/hyperv_vmbus.h
// enum with VMBUS_MESSAGE_CONNECTION_ID etc.; FreeBSD vmbus_var.h; OpenVMM
// vmbus_core protocol.rs).
const (
	// VMBusMessageSINT is the SINT for VMBus messages and, by default,
	// channel events.
	VMBusMessageSINT = 2
	// VMBusMessageConnectionID is the connection HvCallPostMessage uses for
	// channel messages below protocol 5.0 (and for INITIATE_CONTACT there).
	VMBusMessageConnectionID = 1
	// VMBusMessageConnectionID4 is where INITIATE_CONTACT goes from
	// protocol 5.0 on; later messages use the msg_conn_id of
	// VERSION_RESPONSE.
	VMBusMessageConnectionID4 = 4
	// VMBusMessageConnectionIDRedirect is the VTL2 relay ("redirect")
	// message connection (OpenVMM VMBUS_MESSAGE_REDIRECT_CONNECTION_ID).
	VMBusMessageConnectionIDRedirect = 0x800074
	VMBusMessagePortID               = 1
	// VMBusEventConnectionID is the shared guest-to-host event of WS2008
	// (protocol 0.13) hosts.
	VMBusEventConnectionID   = 2
	VMBusEventPortID         = 2
	VMBusMonitorConnectionID = 3
	VMBusMonitorPortID       = 3
	// VMBusMessageSlotOffset is the SINT 2 slot's offset in the message
	// page; VMBusEventFlagsOffset the SINT 2 area's offset in the
	// event-flags page.
	VMBusMessageSlotOffset = VMBusMessageSINT * MessageSize
	VMBusEventFlagsOffset  = VMBusMessageSINT * EventFlagsAreaSize
	// VMBusMaxMessageSize is the largest VMBus channel message (the SynIC
	// payload size).
	VMBusMaxMessageSize = MessagePayloadMax
)
