// Package store keeps the mock's users (id -> state) in memory, optionally
// persisted as an append-only log file: one JSON line per change, replayed
// and rewritten compactly (one line per user) when the store is opened.
package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// State is a user's state in the user service.
type State uint8

const (
	Active   State = 1
	Excluded State = 2
)

func (s State) String() string {
	switch s {
	case Active:
		return "active"
	case Excluded:
		return "excluded"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

func parseState(s string) (State, bool) {
	switch s {
	case "active":
		return Active, true
	case "excluded":
		return Excluded, true
	}
	return 0, false
}

// User is one user. ID is a canonical id (userid.Parse): the store does not
// validate ids, its callers do.
type User struct {
	ID    string
	State State
}

var (
	ErrExists   = errors.New("user already exists")
	ErrNotFound = errors.New("user not found")
)

// Store is safe for concurrent use. Reads take a shared lock; changes go
// through Update, which holds the exclusive lock for the whole callback.
type Store struct {
	mu    sync.RWMutex
	users map[string]State
	ids   sortedIDs

	// The log, written with one write per change; persistent is false for
	// a store in memory only, and file is nil once closed.
	persistent bool
	file       *os.File
}

// Open opens the store persisted at path, replaying and compacting its log;
// an empty path makes a store in memory only. A torn last line (a crash in
// the middle of a write) is dropped and reported through logf, if not nil.
func Open(path string, logf func(format string, args ...any)) (*Store, error) {
	s := &Store{users: make(map[string]State)}
	if path == "" {
		return s, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	torn, err := s.replay(path)
	if err != nil {
		return nil, err
	}
	if torn != "" && logf != nil {
		logf("store %s: dropped a torn last line %q", path, torn)
	}
	if err := s.compact(path); err != nil {
		return nil, err
	}
	s.file, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	s.persistent = true
	return s, nil
}

// logLine is one line of the log: op "set" (create or change state) or
// "delete".
type logLine struct {
	Op    string `json:"op"`
	ID    string `json:"id"`
	State string `json:"state,omitempty"`
}

// replay applies the log at path (missing: an empty store). It returns the
// text of a torn last line (one without its newline that does not parse).
func (s *Store) replay(path string) (torn string, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	for lineNo := 1; len(data) > 0; lineNo++ {
		line, rest, complete := bytes.Cut(data, []byte{'\n'})
		data = rest
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := s.replayLine(line); err != nil {
			if !complete {
				return string(line), nil
			}
			return "", fmt.Errorf("store %s:%d: %w", path, lineNo, err)
		}
	}
	return "", nil
}

func (s *Store) replayLine(line []byte) error {
	var l logLine
	if err := json.Unmarshal(line, &l); err != nil {
		return err
	}
	if l.ID == "" {
		return errors.New("no id")
	}
	switch l.Op {
	case "set":
		st, ok := parseState(l.State)
		if !ok {
			return fmt.Errorf("bad state %q", l.State)
		}
		s.put(l.ID, st)
	case "delete":
		s.remove(l.ID)
	default:
		return fmt.Errorf("bad op %q", l.Op)
	}
	return nil
}

// compact rewrites the log at path as one "set" line per user, in id order,
// through a temporary file renamed over it.
func (s *Store) compact(path string) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	s.ids.After("", func(id string) bool {
		_, err = w.Write(appendLine(nil, id, s.users[id]))
		return err == nil
	})
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store %s: compacting: %w", path, err)
	}
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		dir.Sync()
		dir.Close()
	}
	return nil
}

// appendLine appends the log line for "id now has state st" (0: deleted).
// Ids are UUIDs or digits and states fixed words, so no JSON escaping is
// needed.
func appendLine(b []byte, id string, st State) []byte {
	if st == 0 {
		b = append(b, `{"op":"delete","id":"`...)
		b = append(b, id...)
		return append(b, "\"}\n"...)
	}
	b = append(b, `{"op":"set","id":"`...)
	b = append(b, id...)
	b = append(b, `","state":"`...)
	b = append(b, st.String()...)
	return append(b, "\"}\n"...)
}

func (s *Store) put(id string, st State) {
	if _, ok := s.users[id]; !ok {
		s.ids.Insert(id)
	}
	s.users[id] = st
}

func (s *Store) remove(id string) {
	if _, ok := s.users[id]; ok {
		delete(s.users, id)
		s.ids.Remove(id)
	}
}

// Close closes the log; later changes fail.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	s.file = nil
	return err
}

// Get returns the user with id.
func (s *Store) Get(id string) (User, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.users[id]
	return User{ID: id, State: st}, ok
}

// Len returns the number of users.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.users)
}

// List returns up to limit users with ids greater than after, in id order.
func (s *Store) List(after string, limit int) []User {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]User, 0, min(limit, len(s.users)))
	s.ids.After(after, func(id string) bool {
		if len(out) == limit {
			return false
		}
		out = append(out, User{ID: id, State: s.users[id]})
		return true
	})
	return out
}

// Update runs fn with the store locked exclusively; fn reads and changes the
// store through tx, which is valid only during the call. Whatever fn does
// after a change (such as enqueueing its event) happens before any other
// change, so events of one user can be emitted in the order of the changes.
func (s *Store) Update(fn func(tx *Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := &Tx{s: s}
	defer func() { tx.s = nil }()
	return fn(tx)
}

// Tx reads and changes the store inside Update.
type Tx struct {
	s *Store
}

// Len returns the number of users.
func (tx *Tx) Len() int { return len(tx.s.users) }

// At returns the i-th user in id order, 0 <= i < Len().
func (tx *Tx) At(i int) User {
	id := tx.s.ids.At(i)
	return User{ID: id, State: tx.s.users[id]}
}

// Get returns the user with id.
func (tx *Tx) Get(id string) (User, bool) {
	st, ok := tx.s.users[id]
	return User{ID: id, State: st}, ok
}

// Create adds an active user; ErrExists when id is taken.
func (tx *Tx) Create(id string) (User, error) {
	if _, ok := tx.s.users[id]; ok {
		return User{}, ErrExists
	}
	if err := tx.s.persist(id, Active); err != nil {
		return User{}, err
	}
	tx.s.put(id, Active)
	return User{ID: id, State: Active}, nil
}

// SetState changes a user's state (the same state again is allowed);
// ErrNotFound when unknown.
func (tx *Tx) SetState(id string, st State) (User, error) {
	if st != Active && st != Excluded {
		return User{}, fmt.Errorf("store: bad state %d", st)
	}
	if _, ok := tx.s.users[id]; !ok {
		return User{}, ErrNotFound
	}
	if err := tx.s.persist(id, st); err != nil {
		return User{}, err
	}
	tx.s.users[id] = st
	return User{ID: id, State: st}, nil
}

// Delete removes a user; ErrNotFound when unknown.
func (tx *Tx) Delete(id string) error {
	if _, ok := tx.s.users[id]; !ok {
		return ErrNotFound
	}
	if err := tx.s.persist(id, 0); err != nil {
		return err
	}
	tx.s.remove(id)
	return nil
}

// ErrClosed is returned by changes to a persistent store after Close.
var ErrClosed = errors.New("store: closed")

// persist writes a change to the log, one write(2) per line, so it survives a
// crash of the process (not of the machine: no fsync). The change is applied
// in memory only if this succeeds.
func (s *Store) persist(id string, st State) error {
	if !s.persistent {
		return nil
	}
	if s.file == nil {
		return ErrClosed
	}
	var buf [128]byte
	if _, err := s.file.Write(appendLine(buf[:0], id, st)); err != nil {
		return fmt.Errorf("store: writing the log: %w", err)
	}
	return nil
}
