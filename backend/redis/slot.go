package redis

import (
	"strconv"
	"strings"
	"sync"
)

// Slot returns the Redis Cluster hash slot of key: CRC16 (XMODEM) of the key,
// or of its hash tag (the text between the first "{" and the next "}", when
// not empty), modulo 16384.
func Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) & 16383)
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021), the checksum of the Redis
// Cluster specification.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slotTags holds, for each hash slot, the smallest non-negative integer
// whose decimal form hashes to it (at most six digits): the hash tag that
// puts a key in that slot. It is computed on first use (about 110,000
// CRC16s of up to six bytes, a few milliseconds).
var slotTags = sync.OnceValue(func() *[16384]string {
	var tags [16384]string
	left := len(tags)
	for n := 0; left > 0; n++ {
		s := strconv.Itoa(n)
		if sl := crc16(s) & 16383; tags[sl] == "" {
			tags[sl] = s
			left--
		}
	}
	return &tags
})

// SlotTag returns the shortest decimal string whose hash slot is slot
// (0 to 16383): "{" + SlotTag(Slot(k)) + "}" in a key puts it in k's slot.
func SlotTag(slot int) string { return slotTags()[slot&16383] }
