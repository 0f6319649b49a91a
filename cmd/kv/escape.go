package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
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

// Text that is not valid UTF-8 (a key, a value, a namespace) goes into JSON
// one way everywhere, losslessly: a field NAME holds it as a JSON string
// when it is valid UTF-8, and NAME_b64 holds it in standard base64
// otherwise ("key" or "key_b64", "namespace" or "namespace_b64"). A JSON
// string cannot hold bytes that are not UTF-8: encoding/json would write
// each as U+FFFD, and two different keys would print the same.

// setText sets field name of m to s, or field name_b64 when s is not valid
// UTF-8.
func setText(m map[string]any, name, s string) {
	if utf8.ValidString(s) {
		m[name] = s
	} else {
		m[name+"_b64"] = base64.StdEncoding.EncodeToString([]byte(s))
	}
}

// setTexts sets field name of m to the texts of ss that are valid UTF-8, and
// field name_b64 to the others in base64, each list in the order of ss; a
// list with nothing in it is left out, unless ss is empty.
func setTexts(m map[string]any, name string, ss []string) {
	var plain, b64 []string
	for _, s := range ss {
		if utf8.ValidString(s) {
			plain = append(plain, s)
		} else {
			b64 = append(b64, base64.StdEncoding.EncodeToString([]byte(s)))
		}
	}
	if len(plain) > 0 || len(b64) == 0 {
		m[name] = append([]string{}, plain...)
	}
	if len(b64) > 0 {
		m[name+"_b64"] = b64
	}
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

// inRecord is one line of import as read: key and value are kept as the raw
// JSON text of their strings, so that the bytes of a string that is not
// valid UTF-8 reach the store unchanged (encoding/json would turn each into
// U+FFFD, and two keys into one).
type inRecord struct {
	Key      json.RawMessage `json:"key"`
	KeyB64   *string         `json:"key_b64"`
	Value    json.RawMessage `json:"value"`
	ValueB64 *string         `json:"value_b64"`
	TTLms    *int64          `json:"ttl_ms"`
}

// decode returns the key and value of a record, and an error when it has
// no key. A field and its _b64 form together are an error: which one holds
// the bytes would be a guess.
func (r inRecord) decode() (key string, value []byte, err error) {
	key, hasKey, err := textField("key", r.Key, r.KeyB64)
	if err != nil {
		return "", nil, err
	}
	if !hasKey || key == "" {
		return "", nil, errors.New(`no key (want "key" or "key_b64")`)
	}
	v, _, err := textField("value", r.Value, r.ValueB64)
	if err != nil {
		return "", nil, err
	}
	return key, []byte(v), nil
}

// textField reads field name of an import record: the raw JSON of name, or
// the base64 of name_b64. A JSON null is no field.
func textField(name string, raw json.RawMessage, b64 *string) (string, bool, error) {
	isNull := len(raw) == 0 || string(raw) == "null"
	switch {
	case b64 != nil && !isNull:
		return "", false, fmt.Errorf("both %s and %s_b64: give one", name, name)
	case b64 != nil:
		b, err := base64.StdEncoding.DecodeString(*b64)
		if err != nil {
			return "", false, fmt.Errorf("%s_b64: %w", name, err)
		}
		return string(b), true, nil
	case isNull:
		return "", false, nil
	}
	s, err := unquoteJSON(raw)
	if errors.Is(err, errLoneSurrogate) {
		return "", false, fmt.Errorf("%s: %w (bytes that are not UTF-8 go in %s_b64, in base64)", name, err, name)
	}
	if err != nil {
		return "", false, fmt.Errorf("%s: %w", name, err)
	}
	return s, true, nil
}

// errLoneSurrogate is a \uXXXX escape of half a UTF-16 surrogate pair: no
// character, and no bytes.
var errLoneSurrogate = errors.New("a \\u escape of half a UTF-16 surrogate pair, which is no character")

// unquoteJSON returns the text of a JSON string literal, as encoding/json
// does, except that it keeps bytes that are not valid UTF-8 as they are
// instead of turning them into U+FFFD, and refuses a lone surrogate escape
// (\ud800) instead of turning it into U+FFFD: what it returns is always the
// bytes the line holds. raw was checked by a json.Decoder: its escapes are
// well-formed.
func unquoteJSON(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", errors.New("want a JSON string")
	}
	s := raw[1 : len(raw)-1]
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return "", errors.New("ends inside an escape")
		}
		switch e := s[i+1]; e {
		case '"', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, ok := hex4(s[i+2:])
			if !ok {
				return "", fmt.Errorf("bad escape %q", s[i:min(i+6, len(s))])
			}
			i += 6
			if utf16.IsSurrogate(r) {
				var r2 rune = -1
				if i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
					r2, ok = hex4(s[i+2:])
					if !ok {
						r2 = -1
					}
				}
				pair := utf16.DecodeRune(r, r2)
				if pair == utf8.RuneError {
					return "", errLoneSurrogate
				}
				r = pair
				i += 6
			}
			b.WriteRune(r)
			continue
		default:
			return "", fmt.Errorf("bad escape \\%c", e)
		}
		i += 2
	}
	return b.String(), nil
}

// hex4 reads the four hexadecimal digits at the start of s.
func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(s[:4]), 16, 16)
	return rune(n), err == nil
}
