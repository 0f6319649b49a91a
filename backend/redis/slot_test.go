package redis

import "testing"

func TestSlot(t *testing.T) {
	tests := []struct {
		key  string
		want int
	}{
		{"123456789", 0x31C3 & 16383}, // the CRC-16/XMODEM check value
		{"foo", 12182},                // CLUSTER KEYSLOT foo
		{"{user1000}.following", Slot("user1000")},
		{"{}foo", int(crc16("{}foo") & 16383)}, // an empty tag hashes the whole key
		{"{ns}:a", Slot("ns")},
	}
	for _, tt := range tests {
		if got := Slot(tt.key); got != tt.want {
			t.Errorf("Slot(%q) = %d; want %d", tt.key, got, tt.want)
		}
	}
}

func TestGlobEscape(t *testing.T) {
	tests := map[string]string{
		"signal_cache:": "signal_cache:",
		"a*:":           `a\*:`,
		"a?[1]:":        `a\?\[1\]:`,
		`a\:`:           `a\\:`,
	}
	for in, want := range tests {
		if got := globEscape(in); got != want {
			t.Errorf("globEscape(%q) = %q; want %q", in, got, want)
		}
	}
}
