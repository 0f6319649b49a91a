package redis

import (
	"slices"
	"testing"
)

// TestParseClusterNodes: the masters to scan and track are every master
// that serves slots and every master without slots not marked failed (a
// reshard's target, which owns no slot until the end); replicas, nodes in
// a handshake or without an address are not.
func TestParseClusterNodes(t *testing.T) {
	reply := "" +
		"a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460 [5461->-d4] [5462-<-b2]\n" +
		"b2 127.0.0.1:7002@17002 master - 0 0 2 connected 5461-10922\n" +
		"c3 127.0.0.1:7003@17003 master,fail - 0 0 3 connected 10923-16383\n" +
		"d4 127.0.0.1:7000@17000,host master - 0 0 4 connected\n" +
		"e5 127.0.0.1:7005@17005 master,fail - 0 0 5 disconnected\n" +
		"f6 127.0.0.1:7006@17006 slave a1 0 0 1 connected\n" +
		"g7 127.0.0.1:7007@17007 master,handshake - 0 0 0 connected\n" +
		"h8 :0@0 master,noaddr - 0 0 0 disconnected\n"
	v := parseClusterNodes(reply)
	if want := []string{"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}; !slices.Equal(v.masters, want) {
		t.Errorf("masters = %v; want %v", v.masters, want)
	}
	if want := []string{"127.0.0.1:7000"}; !slices.Equal(v.movingTo, want) {
		t.Errorf("movingTo = %v; want %v", v.movingTo, want)
	}
	if !v.master || !v.importing {
		t.Errorf("master, importing = %v, %v for a node whose own line says master and imports a slot", v.master, v.importing)
	}
	if w := parseClusterNodes("b2 127.0.0.1:7002@17002 myself,master - 0 0 2 connected 5461-10922 [5463->-a1]\n"); w.importing {
		t.Errorf("importing for a node that only migrates")
	}
	if got := v.owners["127.0.0.1:7001"]; got != "0-5460" {
		t.Errorf("owners of 7001 = %q; want 0-5460", got)
	}
	if _, ok := v.owners["127.0.0.1:7000"]; ok {
		t.Errorf("a master without slots has owners")
	}
}

// TestScanStateRescan: a master that receives keys from a master whose
// scan has not ended is scanned (again) after the others; one that
// receives them from a master whose scan has ended is not; the state
// survives its cursor.
func TestScanStateRescan(t *testing.T) {
	st := scanState{scanned: map[string]bool{"a": true}, schedule: []string{"b", "c"}, owners: map[string]string{"a": "0-10", "b": "11-20"}}
	st.rescan("a", "b") // a scanned, b (being scanned) sends it keys
	if !slices.Equal(st.schedule, []string{"b", "c", "a"}) || st.scanned["a"] {
		t.Errorf("after a rescan of a: %+v", st)
	}
	st.rescan("b", "b") // b receives keys while it is scanned
	if !slices.Equal(st.schedule, []string{"b", "c", "a", "b"}) {
		t.Errorf("after a rescan of b: %+v", st)
	}
	st.rescan("c", "b") // c is to be scanned anyway
	if !slices.Equal(st.schedule, []string{"b", "c", "a", "b"}) {
		t.Errorf("after a rescan of c: %+v", st)
	}
	st.cur = 42
	back, err := parseScanState(st.String())
	if err != nil || !slices.Equal(back.schedule, st.schedule) || back.cur != 42 || len(back.scanned) != 0 || back.owners["b"] != "11-20" {
		t.Errorf("parseScanState(%q) = %+v, %v", st.String(), back, err)
	}
	for _, bad := range []string{"x", "|||", "a||1|", "|a|x|"} {
		if _, err := parseScanState(bad); err == nil {
			t.Errorf("parseScanState(%q) accepted", bad)
		}
	}
	if got := slotsOf(map[string]string{"m": "0-2,5"}); got[0] != "m" || got[2] != "m" || got[3] != "" || got[5] != "m" {
		t.Errorf("slotsOf: %v", got[:6])
	}
}
