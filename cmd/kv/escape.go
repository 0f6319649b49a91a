package main

import (
	"encoding/base64"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

var lineEscaper = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`)

// escape writes s on one line of a tab-separated listing: tab, newline and
// backslash as \t, \n and \\.
func escape(s string) string { return lineEscaper.Replace(s) }

// show returns s as a line of ls or keys prints it: escaped for the line
// format, and, on a terminal, with every byte that is not printable (a NUL,
// an ESC that would drive the terminal, invalid UTF-8) shown as \xNN, as
// redis-cli does. Piped, bytes other than tab, newline and backslash go out
// raw.
func (e *env) show(s string) string {
	s = escape(s)
	if !e.ttyOut {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 || !unicode.IsPrint(r) && r != ' ' {
			for _, c := range []byte(s[i : i+max(n, 1)]) {
				fmt.Fprintf(&b, "\\x%02x", c)
			}
		} else {
			b.WriteString(s[i : i+n])
		}
		i += max(n, 1)
	}
	return b.String()
}

// record is one line of an export file (JSON lines). A key or value that is
// not valid UTF-8 goes in key_b64 or value_b64 instead.
type record struct {
	Key      string  `json:"key,omitempty"`
	KeyB64   string  `json:"key_b64,omitempty"`
	Value    *string `json:"value,omitempty"`
	ValueB64 *string `json:"value_b64,omitempty"`
	TTLms    int64   `json:"ttl_ms"`
}

func newRecord(key string, value []byte, ttlMS int64) record {
	r := record{TTLms: ttlMS}
	if utf8.ValidString(key) {
		r.Key = key
	} else {
		r.KeyB64 = base64.StdEncoding.EncodeToString([]byte(key))
	}
	if utf8.Valid(value) {
		v := string(value)
		r.Value = &v
	} else {
		v := base64.StdEncoding.EncodeToString(value)
		r.ValueB64 = &v
	}
	return r
}

// decode returns the key and value of a record.
func (r record) decode() (string, []byte, error) {
	key := r.Key
	if r.KeyB64 != "" {
		k, err := base64.StdEncoding.DecodeString(r.KeyB64)
		if err != nil {
			return "", nil, err
		}
		key = string(k)
	}
	switch {
	case r.ValueB64 != nil:
		v, err := base64.StdEncoding.DecodeString(*r.ValueB64)
		return key, v, err
	case r.Value != nil:
		return key, []byte(*r.Value), nil
	}
	return key, []byte{}, nil
}
