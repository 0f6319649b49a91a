package main

import (
	"context"
	"runtime/debug"
	"strings"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version string

// versionString is the command's version: the one set at build time, else
// the module's from the build info (a release when installed with go install
// module@version; a pseudo-version holding the revision when built from a
// clone with VCS stamping), else "devel" with the VCS revision.
func versionString() string {
	v := version
	bi, ok := debug.ReadBuildInfo()
	if v == "" && ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	if v != "" {
		return v
	}
	v = "devel"
	if ok {
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = "+dirty"
				}
			}
		}
		if rev != "" {
			v += " " + rev[:min(12, len(rev))] + modified
		}
	}
	return strings.TrimSpace(v)
}

func (c *cmdCtx) versionCmd(context.Context) error {
	if c.f.json {
		return c.printJSON(map[string]string{"version": versionString()})
	}
	_, err := c.stdout.Write([]byte("kv " + versionString() + "\n"))
	return err
}
