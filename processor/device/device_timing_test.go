package device

import "testing"

// benchAgents mix the common families; see device_test.go.
var benchAgents = []string{uaChromeWin, uaIPhone, uaIPad, uaAndroid, uaFirefoxMac, uaGooglebot, uaTizenTV}

// BenchmarkParsers measures Parse (mileusna/useragent: OS and browser with
// versions) and the cached Parser on repeating agents. (The comparison with
// medama-io/go-useragent that decided the parser is in BENCHMARKS.md; its
// module is no longer a dependency.)
func BenchmarkParsers(b *testing.B) {
	b.Run("mileusna", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			sink = Parse(benchAgents[i%len(benchAgents)])
		}
	})
	b.Run("cached", func(b *testing.B) {
		p := NewParser(100, nil)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			sink = p.Parse(benchAgents[i%len(benchAgents)])
		}
	})
}

var sink Device
