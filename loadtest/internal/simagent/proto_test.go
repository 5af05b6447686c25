package simagent

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// These tests check the protocol framing and parsing only. Whether the
// hub accepts what a simulated agent sends (authentication, permissions,
// PubAcks across the account import, command replies through the
// gateway) can only be seen against a real hub, whose setup lives in the
// services module's internal packages: the scenarios are run by hand
// against `infrapilot dev` for that (see docs/benchmarks.md).

func TestParseFrames(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []frame
	}{
		{"control lines", "INFO {\"nonce\":\"abc\"}\r\nPING\r\nPONG\r\n+OK\r\nLS+ agent.o.a.> \r\nLS- foo q 1\r\n-ERR 'Authorization Violation'\r\n",
			[]frame{{Op: "INFO", Arg: `{"nonce":"abc"}`}, {Op: "PING"}, {Op: "PONG"}, {Op: "+OK"}, {Op: "LS+", Arg: "agent.o.a.>"},
				{Op: "LS-", Arg: "foo q 1"}, {Op: "-ERR", Arg: "'Authorization Violation'"}}},
		{"lower-case verb and bare LF", "ping\n", []frame{{Op: "PING"}}},
		{"LMSG without reply", "LMSG agent.o.a.cmd.ping 2\r\n{}\r\n",
			[]frame{{Op: "LMSG", Msg: Msg{Subject: "agent.o.a.cmd.ping", Data: []byte("{}")}}}},
		{"LMSG with reply", "LMSG agent.o.a.cmd.ping _R_.x.y 0\r\n\r\n",
			[]frame{{Op: "LMSG", Msg: Msg{Subject: "agent.o.a.cmd.ping", Reply: "_R_.x.y", Data: []byte{}}}}},
		{"LMSG with reply and queues", "LMSG s + r q1 q2 3\r\nabc\r\n",
			[]frame{{Op: "LMSG", Msg: Msg{Subject: "s", Reply: "r", Queues: []string{"q1", "q2"}, Data: []byte("abc")}}}},
		{"LMSG with queues only", "LMSG s | q1 1\r\nx\r\n",
			[]frame{{Op: "LMSG", Msg: Msg{Subject: "s", Queues: []string{"q1"}, Data: []byte("x")}}}},
		{"payload holding CRLF", "LMSG s 6\r\na\r\nb\r\n\r\n",
			[]frame{{Op: "LMSG", Msg: Msg{Subject: "s", Data: []byte("a\r\nb\r\n")}}}},
		{"HMSG with headers", "HMSG s r 43 45\r\nNATS/1.0\r\nIp-Deadline: 2026-01-01\r\nA: 1\r\n\r\nhi\r\n",
			[]frame{{Op: "HMSG", Msg: Msg{Subject: "s", Reply: "r", Header: Header{"Ip-Deadline": {"2026-01-01"}, "A": {"1"}}, Data: []byte("hi")}}}},
		{"HMSG status only", "HMSG _INBOX.agent.o.a.1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n",
			[]frame{{Op: "HMSG", Msg: Msg{Subject: "_INBOX.agent.o.a.1", Header: Header{}, Status: "503", Data: []byte{}}}}},
		{"two messages back to back", "LMSG a 1\r\nx\r\nLMSG b 1\r\ny\r\n",
			[]frame{{Op: "LMSG", Msg: Msg{Subject: "a", Data: []byte("x")}}, {Op: "LMSG", Msg: Msg{Subject: "b", Data: []byte("y")}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newProtoReader(strings.NewReader(tt.in))
			for i, want := range tt.want {
				got, err := r.next()
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("frame %d:\n got %#v\nwant %#v", i, got, want)
				}
			}
			if _, err := r.next(); !errors.Is(err, io.EOF) {
				t.Fatalf("after the frames: %v, want EOF", err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"LMSG s\r\n",                                // no size
		"LMSG s x\r\n",                              // size not a number
		"LMSG s -1\r\n",                             // negative size
		"LMSG s 3\r\nabcd\r\n",                      // payload not followed by CRLF
		"LMSG s * r 1\r\nx\r\n",                     // bad reply indicator
		"HMSG s 5 3\r\nabc\r\n",                     // header larger than the total
		"HMSG s 3 3\r\nabc\r\n",                     // no NATS/1.0 line
		"HMSG s 15 15\r\nNATS/1.0\r\nx\r\n\r\n\r\n", // header line without a colon
		"\r\n",                    // empty line
		"LMSG s 999999999999\r\n", // beyond the size limit
	} {
		r := newProtoReader(strings.NewReader(in))
		if _, err := r.next(); !errors.Is(err, ErrProtocol) {
			t.Errorf("%q: err %v, want ErrProtocol", in, err)
		}
	}
}

func TestAppendMsgParsesBack(t *testing.T) {
	tests := []struct {
		subject, reply string
		h              Header
		data           []byte
	}{
		{"agent.o.a.heartbeat", "", nil, []byte(`{"v":1}`)},
		{"agent.o.a.metrics", "_INBOX.agent.o.a.1", Header{"Nats-Msg-Id": {"metrics-1"}}, []byte(`{"v":1}`)},
		{"_R_.a.b", "", Header{"Nats-Service-Error-Code": {"not_found"}, "Nats-Service-Error": {"container \"x\" not found"}}, []byte(`{}`)},
		{"s", "", nil, nil},
		{"s", "r", nil, []byte("line\r\nbreaks\r\n")},
	}
	var stream []byte
	for _, tt := range tests {
		stream = appendMsg(stream, tt.subject, tt.reply, tt.h, tt.data)
	}
	r := newProtoReader(bytes.NewReader(stream))
	for _, tt := range tests {
		f, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		m := f.Msg
		wantOp := "LMSG"
		if len(tt.h) > 0 {
			wantOp = "HMSG"
		}
		if f.Op != wantOp || m.Subject != tt.subject || m.Reply != tt.reply || !bytes.Equal(m.Data, tt.data) {
			t.Fatalf("got %s %#v, want %s %s %s %q", f.Op, m, wantOp, tt.subject, tt.reply, tt.data)
		}
		for k, v := range tt.h {
			if m.Header.Get(k) != v[0] {
				t.Fatalf("header %s = %q, want %q", k, m.Header.Get(k), v[0])
			}
		}
	}
}

func TestHeaderGetIsCaseInsensitive(t *testing.T) {
	h := Header{"Nats-Service-Error-Code": {"not_found"}}
	if h.Get("nats-service-error-code") != "not_found" || h.Get("Nats-Service-Error-Code") != "not_found" || h.Get("x") != "" {
		t.Fatalf("Get: %v", h)
	}
}

func TestValidSubject(t *testing.T) {
	for s, want := range map[string]bool{"a.b": true, "_INBOX.x.>": true, "": false, "a b": false, "a\r\nPING": false, "a\tb": false} {
		if got := validSubject(s); got != want {
			t.Errorf("validSubject(%q) = %v", s, got)
		}
	}
}

// FuzzProtoReader feeds arbitrary bytes from "the hub": the parser must
// never panic, and must either return frames or an error.
func FuzzProtoReader(f *testing.F) {
	for _, s := range []string{
		"INFO {}\r\nPING\r\n",
		"LMSG s r 2\r\nhi\r\n",
		"LMSG s + r q 1\r\nx\r\n",
		"HMSG s r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
		"HMSG s 16 16\r\nNATS/1.0 503\r\n\r\n\r\n",
		"-ERR 'x'\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := newProtoReader(bytes.NewReader(in))
		for range 64 {
			fr, err := r.next()
			if err != nil {
				return
			}
			if (fr.Op == "LMSG" || fr.Op == "HMSG") && fr.Msg.Subject == "" {
				t.Fatalf("message frame without a subject from %q", in)
			}
		}
	})
}
