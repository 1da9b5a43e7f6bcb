package mlxhw

// Optional counter commands (spec §7.5 "Optional").
const (
	OpDeallocQCounter Opcode = 0x772

	QueryVportCounterInLen  = 0x20
	QueryVportCounterOutLen = 0x210
	NumVportCounters        = 12
	vportCountersOff        = 0x10
	trafficCounterSize      = 16
)

// Indices into QueryVportCounterOut.Counters, in mlx5_ifc.h order.
const (
	CounterRxErrors = iota
	CounterTxErrors
	CounterRxIBUnicast
	CounterTxIBUnicast
	CounterRxIBMulticast
	CounterTxIBMulticast
	CounterRxEthBroadcast
	CounterTxEthBroadcast
	CounterRxEthUnicast
	CounterTxEthUnicast
	CounterRxEthMulticast
	CounterTxEthMulticast
)

func init() {
	opNames[OpDeallocQCounter] = "DEALLOC_Q_COUNTER"
	objectInField[OpDeallocQCounter] = F(0x08, 7, 0)
	simpleOutLen[OpAllocQCounter] = HeaderSize
}

// TrafficCounter is mlx5_ifc traffic_counter: be64 packets, be64 octets.
type TrafficCounter struct{ Packets, Octets uint64 }

// QUERY_VPORT_COUNTER input: 0x08 bit 31 other_vport, bits 15:0
// vport_number; 0x18 bit 31 clear. Output: twelve traffic counters from
// 0x10 (received_errors, transmit_errors, IB unicast/multicast rx/tx,
// Ethernet broadcast/unicast/multicast rx/tx), 0x210 bytes in all.
type QueryVportCounterIn struct {
	OtherVport  bool
	VportNumber uint16
	Clear       bool
}

var fCounterClear = Flag(0x18, 31)

func (c *QueryVportCounterIn) Opcode() Opcode { return OpQueryVportCounter }
func (c *QueryVportCounterIn) InLen() int     { return QueryVportCounterInLen }
func (c *QueryVportCounterIn) OutLen() int    { return QueryVportCounterOutLen }
func (c *QueryVportCounterIn) AppendTo(b []byte) []byte {
	b, m := grow(b, QueryVportCounterInLen)
	putInHeader(m, OpQueryVportCounter, 0)
	fOtherVport.PutBool(m, c.OtherVport)
	fVportNumber.Put(m, uint32(c.VportNumber))
	fCounterClear.PutBool(m, c.Clear)
	return b
}
func (c *QueryVportCounterIn) Decode(b []byte) error {
	if _, err := checkIn(OpQueryVportCounter, b, QueryVportCounterInLen); err != nil {
		return err
	}
	*c = QueryVportCounterIn{fOtherVport.Bool(b), uint16(fVportNumber.Get(b)), fCounterClear.Bool(b)}
	return nil
}

type QueryVportCounterOut struct {
	Counters [NumVportCounters]TrafficCounter
}

func (o *QueryVportCounterOut) Opcode() Opcode { return OpQueryVportCounter }
func (o *QueryVportCounterOut) AppendTo(b []byte) []byte {
	b, m := grow(b, QueryVportCounterOutLen)
	for i, c := range o.Counters {
		put64(m, vportCountersOff+trafficCounterSize*i, c.Packets)
		put64(m, vportCountersOff+trafficCounterSize*i+8, c.Octets)
	}
	return b
}
func (o *QueryVportCounterOut) Decode(b []byte) error {
	if err := checkOut(OpQueryVportCounter, b, vportCountersOff+trafficCounterSize*NumVportCounters); err != nil {
		return err
	}
	for i := range o.Counters {
		o.Counters[i] = TrafficCounter{get64(b, vportCountersOff+trafficCounterSize*i),
			get64(b, vportCountersOff+trafficCounterSize*i+8)}
	}
	return nil
}

// ALLOC_Q_COUNTER is a header-only input (SimpleIn) whose output carries
// counter_set_id at 0x08 bits 7:0; DEALLOC_Q_COUNTER is an ObjectIn with
// the same field.
type AllocQCounterOut struct{ CounterSetID uint8 }

func (o *AllocQCounterOut) Opcode() Opcode { return OpAllocQCounter }
func (o *AllocQCounterOut) AppendTo(b []byte) []byte {
	b, m := grow(b, HeaderSize)
	F(0x08, 7, 0).Put(m, uint32(o.CounterSetID))
	return b
}
func (o *AllocQCounterOut) Decode(b []byte) error {
	if err := checkOut(OpAllocQCounter, b, HeaderSize); err != nil {
		return err
	}
	o.CounterSetID = uint8(F(0x08, 7, 0).Get(b))
	return nil
}

// newCounterInput and newCounterOutput extend the registry.
func newCounterInput(op Opcode) Input {
	switch op {
	case OpQueryVportCounter:
		return new(QueryVportCounterIn)
	case OpAllocQCounter:
		return &SimpleIn{Op: op}
	}
	return nil
}

func newCounterOutput(op Opcode) Output {
	switch op {
	case OpQueryVportCounter:
		return new(QueryVportCounterOut)
	case OpAllocQCounter:
		return new(AllocQCounterOut)
	case OpDeallocQCounter:
		return &EmptyOut{Op: op}
	}
	return nil
}
