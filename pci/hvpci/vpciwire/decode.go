package vpciwire

import "fmt"

type typeInfo struct {
	dir     Direction
	minSize int
	make    func() Message
}

var types = map[MessageType]typeInfo{
	MsgBusRelations:              {HostToGuest, RelationsHeaderSize, func() Message { return new(BusRelations) }},
	MsgBusRelations2:             {HostToGuest, RelationsHeaderSize, func() Message { return new(BusRelations) }},
	MsgEject:                     {HostToGuest, 8, func() Message { return new(SlotMessage) }},
	MsgInvalidateBlock:           {HostToGuest, 16, func() Message { return new(InvalidateBlock) }},
	MsgQueryProtocolVersion:      {GuestToHost, 8, func() Message { return new(QueryProtocolVersion) }},
	MsgBusD0Entry:                {GuestToHost, 16, func() Message { return new(BusD0Entry) }},
	MsgBusD0Exit:                 {GuestToHost, 4, func() Message { return new(Bare) }},
	MsgQueryBusRelations:         {GuestToHost, 4, func() Message { return new(Bare) }},
	MsgQueryResourceRequirements: {GuestToHost, 8, func() Message { return new(SlotMessage) }},
	MsgResourcesReleased:         {GuestToHost, 8, func() Message { return new(SlotMessage) }},
	MsgResetDevice:               {GuestToHost, 8, func() Message { return new(SlotMessage) }},
	MsgEjectionComplete:          {GuestToHost, 12, func() Message { return new(EjectionComplete) }},
	MsgPowerStateChange:          {GuestToHost, 12, func() Message { return new(PowerStateChange) }},
	MsgReadBlock:                 {GuestToHost, 16, func() Message { return new(ReadBlock) }},
	MsgWriteBlock:                {GuestToHost, 16, func() Message { return new(WriteBlock) }},
	MsgResourcesAssigned:         {GuestToHost, ResourcesAssignedHeaderSize, func() Message { return new(ResourcesAssigned) }},
	MsgResourcesAssigned2:        {GuestToHost, ResourcesAssignedHeaderSize, func() Message { return new(ResourcesAssigned) }},
	MsgResourcesAssigned3:        {GuestToHost, ResourcesAssignedHeaderSize, func() Message { return new(ResourcesAssigned) }},
	MsgCreateInterrupt:           {GuestToHost, CreateInterruptSize, func() Message { return new(CreateInterrupt) }},
	MsgCreateInterrupt2:          {GuestToHost, CreateInterrupt2MinSize, func() Message { return new(CreateInterrupt) }},
	MsgCreateInterrupt3:          {GuestToHost, CreateInterrupt3MinSize, func() Message { return new(CreateInterrupt) }},
	MsgDeleteInterrupt:           {GuestToHost, 24, func() Message { return new(DeleteInterrupt) }},
}

// Direction returns the way t travels, or 0 for a type this package does
// not decode.
func (t MessageType) Direction() Direction { return types[t].dir }

// PeekType returns the message type at the start of b without validating
// the rest.
func PeekType(b []byte) (MessageType, error) {
	if len(b) < 4 {
		return 0, fmt.Errorf("%w: %d bytes, no message type", ErrShort, len(b))
	}
	return MessageType(le.Uint32(b)), nil
}

// DecodeFromHost decodes an in-band packet payload the guest received. It
// accepts only host-to-guest types (BUS_RELATIONS(2), EJECT,
// INVALIDATE_BLOCK); anything else known is ErrWrongDirection. Completions
// are not messages: use the Decode*Reply functions.
func DecodeFromHost(b []byte) (Message, error) { return decode(b, HostToGuest) }

// DecodeFromGuest decodes an in-band packet payload the host received. It
// accepts only guest-to-host types.
func DecodeFromGuest(b []byte) (Message, error) { return decode(b, GuestToHost) }

// Decode decodes a message of either direction, for tracing tools.
func Decode(b []byte) (Message, error) { return decode(b, 0) }

// decode checks, in order: the type is present and known, it travels in
// direction dir (0: any), the payload holds the type's minimum size, and
// the type's own consistency rules. Bytes past a fixed-size message are
// ignored (VMBus pads packets to 8 bytes, and Linux and OpenVMM sizes
// differ).
func decode(b []byte, dir Direction) (Message, error) {
	t, err := PeekType(b)
	if err != nil {
		return nil, err
	}
	info, ok := types[t]
	if !ok {
		return nil, fmt.Errorf("%w: %#x (%d bytes)", ErrUnknownType, uint32(t), len(b))
	}
	if dir != 0 && info.dir != dir {
		return nil, fmt.Errorf("%w: %s is %s, received %s", ErrWrongDirection, t, info.dir, dir)
	}
	if len(b) < info.minSize {
		return nil, fmt.Errorf("%w: %s of %d bytes, need %d", ErrShort, t, len(b), info.minSize)
	}
	m := info.make()
	if err := m.decode(b); err != nil {
		return nil, err
	}
	return m, nil
}
