package pii

import (
	"bytes"
	"testing"
)

func TestTruncateIP(t *testing.T) {
	t.Parallel()
	v6 := []byte{0x20, 0x01, 0x0d, 0xb8, 0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4, 5, 6, 7, 8}
	tests := []struct {
		name   string
		ip     []byte
		v4, v6 int
		want   []byte
	}{
		{"v4 /24", []byte{1, 2, 3, 4}, 24, 48, []byte{1, 2, 3, 0}},
		{"v4 /20", []byte{1, 2, 0xff, 4}, 20, 48, []byte{1, 2, 0xf0, 0}},
		{"v4 /0", []byte{1, 2, 3, 4}, 0, 48, []byte{0, 0, 0, 0}},
		{"v6 /48", v6, 24, 48, []byte{0x20, 0x01, 0x0d, 0xb8, 0xaa, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"v6 /36", v6, 24, 36, []byte{0x20, 0x01, 0x0d, 0xb8, 0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"garbage", []byte{1, 2, 3}, 24, 48, nil},
	}
	for _, tt := range tests {
		if got := AppendTruncatedIP(nil, tt.ip, tt.v4, tt.v6); !bytes.Equal(got, tt.want) {
			t.Errorf("%s: AppendTruncatedIP(%v, %d, %d) = %v, want %v", tt.name, tt.ip, tt.v4, tt.v6, got, tt.want)
		}
	}
	if got := TruncateIP([]byte{1, 2, 3, 4}); !bytes.Equal(got, []byte{1, 2, 3, 0}) {
		t.Fatalf("TruncateIP default: %v", got)
	}
}
