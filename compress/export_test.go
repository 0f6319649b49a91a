package compress

// Force makes New compress every value at least the threshold long, even
// when that does not shorten it, so that the tests' short values are stored
// compressed.
func Force() Option { return func(c *codec) { c.force = true } }

// Decompressions returns the number of values decompressed by the process
// so far.
func Decompressions() int64 { return decompressions.Load() }
