package kv_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kvmap/kv"
	"github.com/kvmap/kv/backend/memory"
)

// TestNoStaleSet: a load that read the source before another process
// updated it, and wrote or deleted the key, stores nothing: the write,
// delete, expiry change or clear through any Map on the store ends the
// load's right to store (WithLoadLease), and through the loading Map itself
// without leases. On the old code the old value was stored afterwards, for a
// whole TTL.
func TestNoStaleSet(t *testing.T) {
	type op func(ctx context.Context, other *kv.Map[string]) error
	ops := map[string]op{
		"Delete": func(ctx context.Context, o *kv.Map[string]) error { return o.Delete(ctx, "k") },
		"Set":    func(ctx context.Context, o *kv.Map[string]) error { return o.Set(ctx, "k", "new") },
		"SetThenDelete": func(ctx context.Context, o *kv.Map[string]) error {
			if err := o.Set(ctx, "k", "new"); err != nil {
				return err
			}
			return o.Delete(ctx, "k")
		},
		"Clear": func(ctx context.Context, o *kv.Map[string]) error { return o.Clear(ctx) },
		"SetThenExpire": func(ctx context.Context, o *kv.Map[string]) error {
			if err := o.Set(ctx, "k", "new"); err != nil {
				return err
			}
			_, err := o.Expire(ctx, "k", time.Hour)
			return err
		},
	}
	for name, write := range ops {
		for _, leases := range []bool{true, false} {
			t.Run(name+map[bool]string{true: "/lease", false: "/sameMap"}[leases], func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					ctx := context.Background()
					store := memory.New(memory.WithSweepInterval(0))
					defer store.Close()
					var opts []kv.Option
					if leases {
						opts = append(opts, kv.WithLoadLease(time.Second))
					}
					loader := mustNew[string](t, store, "ns", opts...)
					defer loader.Close()
					other := loader // without leases only the loading Map's own writes can end the right
					if leases {
						other = mustNew[string](t, store, "ns", opts...)
						defer other.Close()
					}
					done := make(chan error, 1)
					go func() {
						v, err := loader.GetOrLoad(ctx, "k", func(context.Context) (string, error) {
							time.Sleep(3 * time.Second) // read "old" from the source, slowly
							return "old", nil
						})
						if err == nil && v != "old" {
							t.Errorf("GetOrLoad = %q; want the loaded old", v)
						}
						done <- err
					}()
					time.Sleep(time.Second)
					if err := write(ctx, other); err != nil {
						t.Fatal(err)
					}
					if err := <-done; err != nil {
						t.Fatalf("GetOrLoad = %v", err)
					}
					v, ok, err := other.Get(ctx, "k")
					if err != nil {
						t.Fatal(err)
					}
					if ok && v == "old" {
						t.Errorf("after %s during the load, the store holds the load's old value", name)
					}
				})
			})
		}
	}
}

// TestLeaseWaiterWokenByReport: a Map waiting for another Map's lease
// learns of the stored value from the store's change report, at once,
// instead of at its next poll (up to 50 ms later).
func TestLeaseWaiterWokenByReport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New(memory.WithSweepInterval(0))
		defer store.Close()
		m1 := mustNew[string](t, store, "ns", kv.WithLoadLease(time.Minute))
		defer m1.Close()
		m2 := mustNew[string](t, store, "ns", kv.WithLoadLease(time.Minute))
		defer m2.Close()
		// Ten seconds: the poll is at its 50 ms ceiling by then, and the
		// value is stored between two polls.
		load := func(context.Context) (string, error) {
			time.Sleep(10*time.Second + 7*time.Millisecond)
			return "v", nil
		}
		go func() {
			if _, err := m1.GetOrLoad(ctx, "k", load); err != nil {
				t.Error(err)
			}
		}()
		synctest.Wait()
		start := time.Now()
		v, err := m2.GetOrLoad(ctx, "k", load)
		if err != nil || v != "v" {
			t.Fatalf("GetOrLoad = %q, %v; want v", v, err)
		}
		if got, want := time.Since(start), 10*time.Second+7*time.Millisecond; got != want {
			t.Errorf("the waiter got the value after %v; want %v, the moment it was stored", got, want)
		}
	})
}
