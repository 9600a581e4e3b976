package store

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func id(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

func mustOpen(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func create(t *testing.T, s *Store, ids ...string) {
	t.Helper()
	err := s.Update(func(tx *Tx) error {
		for _, id := range ids {
			if _, err := tx.Create(id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func all(s *Store) []User { return s.List("", 1<<30) }

func TestSortedIDsMatchesASortedSlice(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var got sortedIDs
	var want []string
	for i := range 20000 {
		x := id(rng.Intn(5000))
		if pos, found := slices.BinarySearch(want, x); found {
			want = slices.Delete(want, pos, pos+1)
			got.Remove(x)
		} else {
			want = slices.Insert(want, pos, x)
			got.Insert(x)
		}
		if got.Len() != len(want) {
			t.Fatalf("step %d: Len %d, want %d", i, got.Len(), len(want))
		}
		if len(want) > 0 {
			k := rng.Intn(len(want))
			if got.At(k) != want[k] {
				t.Fatalf("step %d: At(%d) = %s, want %s", i, k, got.At(k), want[k])
			}
		}
	}
	var listed []string
	got.After("", func(id string) bool { listed = append(listed, id); return true })
	if !slices.Equal(listed, want) {
		t.Fatal("After(\"\") differs from the sorted slice")
	}
	if len(got.chunks) < 2 {
		t.Fatalf("want several chunks for %d ids, got %d", len(want), len(got.chunks))
	}
	from := want[len(want)/2]
	listed = listed[:0]
	got.After(from, func(id string) bool { listed = append(listed, id); return len(listed) < 10 })
	if !slices.Equal(listed, want[len(want)/2+1:len(want)/2+11]) {
		t.Fatalf("After(%s) = %v", from, listed)
	}
}

func TestChanges(t *testing.T) {
	s := mustOpen(t, "")
	create(t, s, id(2), id(1))
	err := s.Update(func(tx *Tx) error {
		if _, err := tx.Create(id(1)); !errors.Is(err, ErrExists) {
			t.Errorf("Create twice: %v, want ErrExists", err)
		}
		if _, err := tx.SetState(id(9), Excluded); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetState unknown: %v, want ErrNotFound", err)
		}
		if err := tx.Delete(id(9)); !errors.Is(err, ErrNotFound) {
			t.Errorf("Delete unknown: %v, want ErrNotFound", err)
		}
		if u, err := tx.SetState(id(2), Excluded); err != nil || u != (User{id(2), Excluded}) {
			t.Errorf("SetState: %v, %v", u, err)
		}
		if tx.Len() != 2 || tx.At(0).ID != id(1) || tx.At(1) != (User{id(2), Excluded}) {
			t.Errorf("Len/At: %d %v %v", tx.Len(), tx.At(0), tx.At(1))
		}
		return tx.Delete(id(1))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get(id(1)); ok {
		t.Error("deleted user still there")
	}
	if u, ok := s.Get(id(2)); !ok || u.State != Excluded {
		t.Errorf("Get = %v, %v", u, ok)
	}
	if s.Len() != 1 {
		t.Errorf("Len = %d", s.Len())
	}
}

func TestList(t *testing.T) {
	s := mustOpen(t, "")
	for i := 10; i > 0; i-- {
		create(t, s, id(i))
	}
	page := s.List("", 3)
	if len(page) != 3 || page[0].ID != id(1) || page[2].ID != id(3) {
		t.Fatalf("first page %v", page)
	}
	page = s.List(id(3), 100)
	if len(page) != 7 || page[0].ID != id(4) || page[6].ID != id(10) {
		t.Fatalf("second page %v", page)
	}
	if page = s.List(id(10), 5); len(page) != 0 {
		t.Fatalf("past the end: %v", page)
	}
}

func TestPersistenceReplaysAndCompacts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "users.log")
	s, err := Open(path, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(7))
	changes := 0
	for range 3000 {
		x := id(rng.Intn(500))
		err := s.Update(func(tx *Tx) error {
			u, ok := tx.Get(x)
			switch {
			case !ok:
				_, err := tx.Create(x)
				return err
			case rng.Intn(3) == 0:
				return tx.Delete(x)
			case u.State == Active:
				_, err := tx.SetState(x, Excluded)
				return err
			default:
				_, err := tx.SetState(x, Active)
				return err
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		changes++
	}
	want := all(s)
	// Every change is in the file before Close (written through, not buffered).
	if n := countLines(t, path); n != changes {
		t.Fatalf("log has %d lines, want one per change (%d)", n, changes)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error { _, err := tx.Create(id(9999)); return err }); !errors.Is(err, ErrClosed) {
		t.Fatalf("change after Close: %v, want ErrClosed", err)
	}

	s2 := mustOpen(t, path)
	if got := all(s2); !slices.Equal(got, want) {
		t.Fatalf("replayed %d users, want %d (equal lists)", len(got), len(want))
	}
	// Compacted: one line per user, in id order.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var wantText strings.Builder
	for _, u := range want {
		fmt.Fprintf(&wantText, "{\"op\":\"set\",\"id\":\"%s\",\"state\":\"%s\"}\n", u.ID, u.State)
	}
	if string(data) != wantText.String() {
		t.Fatalf("compacted log:\n%.300s\nwant:\n%.300s", data, wantText.String())
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
	// And it keeps appending after the compaction.
	create(t, s2, id(100000))
	s2.Close()
	s3 := mustOpen(t, path)
	if _, ok := s3.Get(id(100000)); !ok || s3.Len() != len(want)+1 {
		t.Fatalf("change after reopening lost: len %d", s3.Len())
	}
}

func TestTornLastLineIsDropped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.log")
	content := `{"op":"set","id":"` + id(1) + `","state":"active"}` + "\n" +
		`{"op":"set","id":"` + id(2) + `","state":"excluded"}` + "\n" +
		`{"op":"delete","id":"` + id(1) + `"}` + "\n" +
		`{"op":"set","id":"` + id(3) + `","st`
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, path)
	if got := all(s); !slices.Equal(got, []User{{id(2), Excluded}}) {
		t.Fatalf("users %v", got)
	}
}

func TestCorruptLineIsAnError(t *testing.T) {
	for name, line := range map[string]string{
		"not json":  "hello",
		"bad op":    `{"op":"frob","id":"` + id(1) + `"}`,
		"bad state": `{"op":"set","id":"` + id(1) + `","state":"gone"}`,
		"no id":     `{"op":"delete"}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "users.log")
			os.WriteFile(path, []byte(line+"\n"+`{"op":"set","id":"`+id(2)+`","state":"active"}`+"\n"), 0o644)
			if s, err := Open(path, nil); err == nil {
				s.Close()
				t.Fatal("opened a corrupt log")
			} else if !strings.Contains(err.Error(), "users.log:1") {
				t.Fatalf("error %q does not name the line", err)
			}
		})
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}
