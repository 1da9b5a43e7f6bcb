package vpciwire

import "fmt"

// Completions (VMBus packet type 11) carry no message type: each begins
// with an NTSTATUS, and the requester knows which form to expect from the
// request it matched by transaction id. Each Decode*Reply checks the
// length of the form it decodes and ignores trailing bytes.

// Reply is a decoded completion payload.
type Reply interface {
	EncodedLen() int
	AppendTo(b []byte) []byte
	Encode() []byte
}

func short(what string, b []byte, need int) error {
	return fmt.Errorf("%w: %s of %d bytes, need %d", ErrShort, what, len(b), need)
}

// StatusReply is a completion that is only a status (Linux struct
// pci_response): the answer to BUS_D0ENTRY, BUS_D0EXIT, WRITE_BLOCK and,
// for Linux, RESOURCES_ASSIGNED(2).
//
//	off 0  s32 status
type StatusReply struct {
	Status Status
}

func (r *StatusReply) EncodedLen() int          { return 4 }
func (r *StatusReply) Encode() []byte           { return encode(r) }
func (r *StatusReply) AppendTo(b []byte) []byte { return le.AppendUint32(b, uint32(r.Status)) }

// DecodeStatusReply decodes a StatusReply.
func DecodeStatusReply(b []byte) (*StatusReply, error) {
	if len(b) < 4 {
		return nil, short("status reply", b, 4)
	}
	return &StatusReply{Status: Status(le.Uint32(b))}, nil
}

// VersionReply answers QUERY_PROTOCOL_VERSION (Linux reads only the
// status; OpenVMM QueryProtocolVersionReply adds the version, and always
// writes 1.3 there):
//
//	off 0  s32 status (StatusRevisionMismatch: try an older version)
//	off 4  u32 protocol_version (absent in a 4-byte reply: decodes as 0)
type VersionReply struct {
	Status  Status
	Version Version
}

func (r *VersionReply) EncodedLen() int { return 8 }
func (r *VersionReply) Encode() []byte  { return encode(r) }
func (r *VersionReply) AppendTo(b []byte) []byte {
	return le.AppendUint32(le.AppendUint32(b, uint32(r.Status)), uint32(r.Version))
}

// DecodeVersionReply decodes a VersionReply of 4 or more bytes.
func DecodeVersionReply(b []byte) (*VersionReply, error) {
	if len(b) < 4 {
		return nil, short("version reply", b, 4)
	}
	r := &VersionReply{Status: Status(le.Uint32(b))}
	if len(b) >= 8 {
		r.Version = Version(le.Uint32(b[4:]))
	}
	return r, nil
}

// ResourceRequirementsReply answers QUERY_RESOURCE_REQUIREMENTS (Linux
// struct pci_q_res_req_response, OpenVMM QueryResourceRequirementsReply):
// for each BAR, what reading it back after writing all-ones would return
// (pci.DecodeProbedBARs turns these into sizes).
//
//	off 0  s32 status
//	off 4  u32 probed_bar[6]
type ResourceRequirementsReply struct {
	Status    Status
	ProbedBAR [6]uint32
}

func (r *ResourceRequirementsReply) EncodedLen() int { return 28 }
func (r *ResourceRequirementsReply) Encode() []byte  { return encode(r) }
func (r *ResourceRequirementsReply) AppendTo(b []byte) []byte {
	b = le.AppendUint32(b, uint32(r.Status))
	for _, v := range r.ProbedBAR {
		b = le.AppendUint32(b, v)
	}
	return b
}

// DecodeResourceRequirementsReply decodes a ResourceRequirementsReply.
func DecodeResourceRequirementsReply(b []byte) (*ResourceRequirementsReply, error) {
	if len(b) < 28 {
		return nil, short("resource requirements reply", b, 28)
	}
	r := &ResourceRequirementsReply{Status: Status(le.Uint32(b))}
	for i := range r.ProbedBAR {
		r.ProbedBAR[i] = le.Uint32(b[4+4*i:])
	}
	return r, nil
}

// CreateInterruptReply answers CREATE_INTERRUPT(2,3) (Linux struct
// pci_create_int_response, OpenVMM CreateInterruptReply):
//
//	off 0  s32 status
//	off 4  u32 reserved
//	off 8  TranslatedInterrupt (16 bytes)
type CreateInterruptReply struct {
	Status    Status
	Interrupt TranslatedInterrupt
}

func (r *CreateInterruptReply) EncodedLen() int { return 24 }
func (r *CreateInterruptReply) Encode() []byte  { return encode(r) }
func (r *CreateInterruptReply) AppendTo(b []byte) []byte {
	b = le.AppendUint32(le.AppendUint32(b, uint32(r.Status)), 0)
	return r.Interrupt.appendTo(b)
}

// DecodeCreateInterruptReply decodes a CreateInterruptReply.
func DecodeCreateInterruptReply(b []byte) (*CreateInterruptReply, error) {
	if len(b) < 24 {
		return nil, short("create interrupt reply", b, 24)
	}
	r := &CreateInterruptReply{Status: Status(le.Uint32(b))}
	r.Interrupt.decode(b[8:])
	return r, nil
}

// PowerStateReply answers POWER_STATE_CHANGE (Linux struct
// pci_set_power_response):
//
//	off 0   s32 status
//	off 4   u32 win_slot
//	off 8   u32 resultant_state
//	off 12  u32 reserved
type PowerStateReply struct {
	Status Status
	Slot   Slot
	State  uint32
}

func (r *PowerStateReply) EncodedLen() int { return 16 }
func (r *PowerStateReply) Encode() []byte  { return encode(r) }
func (r *PowerStateReply) AppendTo(b []byte) []byte {
	b = le.AppendUint32(b, uint32(r.Status))
	b = le.AppendUint32(b, uint32(r.Slot))
	b = le.AppendUint32(b, r.State)
	return le.AppendUint32(b, 0)
}

// DecodePowerStateReply decodes a PowerStateReply.
func DecodePowerStateReply(b []byte) (*PowerStateReply, error) {
	if len(b) < 16 {
		return nil, short("power state reply", b, 16)
	}
	return &PowerStateReply{
		Status: Status(le.Uint32(b)),
		Slot:   Slot(le.Uint32(b[4:])),
		State:  le.Uint32(b[8:]),
	}, nil
}

// ReadBlockReply answers READ_BLOCK (Linux struct
// pci_read_block_response):
//
//	off 0  u32 status
//	off 4  u8  bytes[requested]
type ReadBlockReply struct {
	Status Status
	Data   []byte
}

func (r *ReadBlockReply) EncodedLen() int { return 4 + len(r.Data) }
func (r *ReadBlockReply) Encode() []byte  { return encode(r) }
func (r *ReadBlockReply) AppendTo(b []byte) []byte {
	return append(le.AppendUint32(b, uint32(r.Status)), r.Data...)
}

// DecodeReadBlockReply decodes the reply to a READ_BLOCK of requested
// bytes (at most MaxBlockSize). As in Linux, the data is whatever follows
// the status, up to requested bytes (a reply may carry fewer, and packet
// padding may add more); a failed status carries no data.
func DecodeReadBlockReply(b []byte, requested int) (*ReadBlockReply, error) {
	if requested < 0 || requested > MaxBlockSize {
		return nil, fmt.Errorf("%w: READ_BLOCK of %d bytes, limit %d", ErrInconsistent, requested, MaxBlockSize)
	}
	if len(b) < 4 {
		return nil, short("read block reply", b, 4)
	}
	r := &ReadBlockReply{Status: Status(le.Uint32(b))}
	if r.Status != StatusSuccess {
		return r, nil
	}
	if n := min(requested, len(b)-4); n > 0 {
		r.Data = append([]byte(nil), b[4:4+n]...)
	}
	return r, nil
}

// ResourcesAssignedReply answers RESOURCES_ASSIGNED(2,3) in OpenVMM's
// form (DeviceTranslateReply); Linux reads only the status, so a guest
// may decode the completion with DecodeStatusReply instead:
//
//	off 0    s32 status
//	off 4    u32 win_slot
//	off 8    PartialResourceDescriptor[6] (translated)
//	off 128  u32 msi_resource_count
//	off 132  u32 reserved
//	off 136  MSI resources (not carried; see ResourcesAssigned)
type ResourcesAssignedReply struct {
	Status   Status
	Slot     Slot
	Memory   [6]PartialResourceDescriptor
	MSICount uint32
}

func (r *ResourcesAssignedReply) EncodedLen() int { return ResourcesAssignedHeaderSize }
func (r *ResourcesAssignedReply) Encode() []byte  { return encode(r) }
func (r *ResourcesAssignedReply) AppendTo(b []byte) []byte {
	b = le.AppendUint32(b, uint32(r.Status))
	b = le.AppendUint32(b, uint32(r.Slot))
	for i := range r.Memory {
		b = r.Memory[i].appendTo(b)
	}
	return le.AppendUint32(le.AppendUint32(b, r.MSICount), 0)
}

// DecodeResourcesAssignedReply decodes a ResourcesAssignedReply of at
// least 136 bytes.
func DecodeResourcesAssignedReply(b []byte) (*ResourcesAssignedReply, error) {
	if len(b) < ResourcesAssignedHeaderSize {
		return nil, short("resources assigned reply", b, ResourcesAssignedHeaderSize)
	}
	r := &ResourcesAssignedReply{Status: Status(le.Uint32(b)), Slot: Slot(le.Uint32(b[4:]))}
	for i := range r.Memory {
		r.Memory[i].decode(b[8+i*PartialResourceDescriptorSize:])
	}
	r.MSICount = le.Uint32(b[128:])
	return r, nil
}
