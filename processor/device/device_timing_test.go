package device

import (
	"testing"

	medama "github.com/medama-io/go-useragent"
)

// benchAgents mix the common families; see device_test.go.
var benchAgents = []string{uaChromeWin, uaIPhone, uaIPad, uaAndroid, uaFirefoxMac, uaGooglebot, uaTizenTV}

// BenchmarkParsers measures the parser choice: Parse (mileusna/useragent,
// what the processor uses: OS and browser with versions) against
// medama-io/go-useragent (a trie, faster, but no OS version), and the
// cached Parser on repeating agents.
func BenchmarkParsers(b *testing.B) {
	b.Run("mileusna", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			sink = Parse(benchAgents[i%len(benchAgents)])
		}
	})
	b.Run("medama", func(b *testing.B) {
		p := medama.NewParser()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			ua := p.Parse(benchAgents[i%len(benchAgents)])
			sink = Device{Browser: ua.GetBrowser(), BrowserVersion: ua.GetVersion(), OS: ua.GetOS(), Type: ua.GetDevice()}
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
