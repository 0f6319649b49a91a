package compress

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// signal is a trading signal as backtest-kit stores it, JSON-encoded to
// about 1 KB.
type signal struct {
	ID                  string  `json:"id"`
	Position            string  `json:"position"`
	Note                string  `json:"note"`
	PriceOpen           float64 `json:"priceOpen"`
	PriceTakeProfit     float64 `json:"priceTakeProfit"`
	PriceStopLoss       float64 `json:"priceStopLoss"`
	MinuteEstimatedTime int     `json:"minuteEstimatedTime"`
	Timestamp           int64   `json:"timestamp"`
	ScheduledAt         int64   `json:"scheduledAt"`
	PendingAt           int64   `json:"pendingAt"`
	Symbol              string  `json:"symbol"`
	ExchangeName        string  `json:"exchangeName"`
	StrategyName        string  `json:"strategyName"`
	FrameName           string  `json:"frameName"`
	IsScheduled         bool    `json:"_isScheduled"`
	Indicators          struct {
		RSI       float64   `json:"rsi"`
		MACD      float64   `json:"macd"`
		Signal    float64   `json:"macdSignal"`
		EMA       []float64 `json:"ema"`
		Volume24h float64   `json:"volume24h"`
	} `json:"indicators"`
	PartialCloses []struct {
		Percent float64 `json:"percent"`
		Price   float64 `json:"price"`
		At      int64   `json:"at"`
	} `json:"partialCloses"`
}

// signals returns n JSON signals of about 1 KB each, all different, the same
// for every seed.
func signals(n int) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	symbols := []string{"BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"}
	out := make([][]byte, n)
	for i := range out {
		p := math.Round((20000+r.Float64()*50000)*100) / 100 // prices in ticks of 0.01
		s := signal{
			ID:                  fmt.Sprintf("%024x", r.Uint64()),
			Position:            []string{"long", "short"}[r.IntN(2)],
			Note:                fmt.Sprintf("Breakout above the %d-period high with volume %.1fx the average; trend filter agrees on the 4h and 1d frames, funding neutral.", 20+r.IntN(40), 1+r.Float64()*3),
			PriceOpen:           p,
			PriceTakeProfit:     math.Round(p*(1+r.Float64()*0.05)*100) / 100,
			PriceStopLoss:       math.Round(p*(1-r.Float64()*0.03)*100) / 100,
			MinuteEstimatedTime: 60 + r.IntN(1440),
			Timestamp:           1767225600000 + r.Int64N(1e9),
			Symbol:              symbols[r.IntN(len(symbols))],
			ExchangeName:        "binance",
			StrategyName:        "trend-follower-v3",
			FrameName:           "backtest-2025-q4",
			IsScheduled:         r.IntN(2) == 0,
		}
		s.ScheduledAt, s.PendingAt = s.Timestamp, s.Timestamp+r.Int64N(6e5)
		s.Indicators.RSI, s.Indicators.MACD, s.Indicators.Signal = r.Float64()*100, r.NormFloat64()*50, r.NormFloat64()*50
		for range 8 {
			s.Indicators.EMA = append(s.Indicators.EMA, p*(1+r.NormFloat64()*0.01))
		}
		s.Indicators.Volume24h = r.Float64() * 1e9
		for range 3 {
			s.PartialCloses = append(s.PartialCloses, struct {
				Percent float64 `json:"percent"`
				Price   float64 `json:"price"`
				At      int64   `json:"at"`
			}{float64(10 * (1 + r.IntN(5))), math.Round(p*(1+r.NormFloat64()*0.01)*100) / 100, s.Timestamp + r.Int64N(1e7)})
		}
		b, err := json.Marshal(s)
		if err != nil {
			panic(err)
		}
		out[i] = b
	}
	return out
}

// BenchmarkSignal1KB compresses and decompresses ~1 KB JSON signals with
// each candidate: ns/op is one encode and one decode of one signal, and
// ratio is raw bytes over stored bytes (marker included for the package's
// own formats). Run: go test ./compress/ -run '^$' -bench Signal1KB -benchmem
func BenchmarkSignal1KB(b *testing.B) {
	vals := signals(256)
	raw := 0
	for _, v := range vals {
		raw += len(v)
	}
	b.Logf("%d signals, %d bytes on average", len(vals), raw/len(vals))
	enc := func(level zstd.EncoderLevel) *zstd.Encoder {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level))
		if err != nil {
			b.Fatal(err)
		}
		return e
	}
	dec, err := zstdDecoder()
	if err != nil {
		b.Fatal(err)
	}
	fastest, better := enc(zstd.SpeedFastest), enc(zstd.SpeedBetterCompression)
	zstdWith := func(e *zstd.Encoder) func([]byte) (int, []byte, error) {
		return func(v []byte) (int, []byte, error) {
			s := e.EncodeAll(v, nil)
			d, err := dec.DecodeAll(s, make([]byte, 0, len(v)))
			return len(s) + headerLen, d, err
		}
	}
	for _, c := range []struct {
		name string
		// round returns the stored bytes' length and the value decoded.
		round func(v []byte) (int, []byte, error)
	}{
		{"s2", codecRound(&codec{alg: S2, max: DefaultMaxSize})},
		{"zstd", codecRound(&codec{alg: Zstd, max: DefaultMaxSize})},
		{"s2-better", func(v []byte) (int, []byte, error) {
			e := s2.EncodeBetter(nil, v)
			d, err := s2.Decode(nil, e)
			return len(e) + headerLen, d, err
		}},
		{"zstd-fastest", zstdWith(fastest)},
		{"zstd-better", zstdWith(better)},
	} {
		b.Run(c.name, func(b *testing.B) {
			stored := 0
			for _, v := range vals {
				n, d, err := c.round(v)
				if err != nil || string(d) != string(v) {
					b.Fatalf("round trip: %v", err)
				}
				stored += n
			}
			b.SetBytes(int64(raw / len(vals)))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, _, err := c.round(vals[i%len(vals)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			// After the loop: b.Loop resets the metrics reported before it.
			b.ReportMetric(float64(raw)/float64(stored), "ratio")
			b.ReportMetric(float64(stored)/float64(len(vals)), "stored-B")
		})
	}
}

func codecRound(c *codec) func([]byte) (int, []byte, error) {
	return func(v []byte) (int, []byte, error) {
		s, err := c.encode(v)
		if err != nil {
			return 0, nil, err
		}
		d, err := c.decode(s)
		return len(s), d, err
	}
}

// BenchmarkEncode and BenchmarkDecode time each half alone, per algorithm.
func BenchmarkEncode(b *testing.B) {
	vals := signals(256)
	for _, alg := range []Algorithm{S2, Zstd} {
		c := &codec{alg: alg, max: DefaultMaxSize}
		b.Run(alg.String(), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := c.encode(vals[i%len(vals)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	vals := signals(256)
	for _, alg := range []Algorithm{S2, Zstd} {
		c := &codec{alg: alg, max: DefaultMaxSize}
		stored := make([][]byte, len(vals))
		for i, v := range vals {
			s, err := c.encode(v)
			if err != nil {
				b.Fatal(err)
			}
			stored[i] = s
		}
		b.Run(alg.String(), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := c.decode(stored[i%len(stored)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
