// s2ref: the reference S2 implementation (github.com/klauspost/compress/s2,
// Debian's golang-github-klauspost-compress-dev) driven from the interop tests
// and the S2 benchmark. Built in GOPATH mode, offline.
//
//	s2ref encode-dir IN_DIR OUT_DIR     every file x every mode -> OUT_DIR/<file>.<mode>
//	s2ref check-dir IN_DIR ENC_DIR      decode ENC_DIR/<file>.<block*|stream*>, compare with IN_DIR/<file>
//	s2ref decode-block | decode-stream  stdin -> stdout
//	s2ref bench FILE FRAME_BYTES LEVEL  one timed pass: encode+decode FILE cut into frames
package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/s2"
)

var blockModes = map[string]func(dst, src []byte) []byte{
	"block-default":       s2.Encode,
	"block-better":        s2.EncodeBetter,
	"block-best":          s2.EncodeBest,
	"block-snappy":        s2.EncodeSnappy,
	"block-snappy-better": s2.EncodeSnappyBetter,
	"block-snappy-best":   s2.EncodeSnappyBest,
}

var streamModes = map[string][]s2.WriterOption{
	"stream-default":       {},
	"stream-better":        {s2.WriterBetterCompression()},
	"stream-best":          {s2.WriterBestCompression()},
	"stream-snappy":        {s2.WriterSnappyCompat()},
	"stream-snappy-better": {s2.WriterSnappyCompat(), s2.WriterBetterCompression()},
	"stream-snappy-best":   {s2.WriterSnappyCompat(), s2.WriterBestCompression()},
}

func die(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "s2ref: "+format+"\n", a...)
	os.Exit(2)
}

func encodeStream(data []byte, opts []s2.WriterOption) []byte {
	var buf bytes.Buffer
	w := s2.NewWriter(&buf, append(append([]s2.WriterOption{}, opts...), s2.WriterConcurrency(1))...)
	if _, err := w.Write(data); err != nil {
		die("stream write: %v", err)
	}
	if err := w.Close(); err != nil {
		die("stream close: %v", err)
	}
	return buf.Bytes()
}

func decodeStream(data []byte) ([]byte, error) {
	return io.ReadAll(s2.NewReader(bytes.NewReader(data)))
}

func files(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		die("%v", err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

func encodeDir(in, out string) {
	for _, f := range files(in) {
		data, err := os.ReadFile(filepath.Join(in, f))
		if err != nil {
			die("%v", err)
		}
		for m, enc := range blockModes {
			if err := os.WriteFile(filepath.Join(out, f+"."+m), enc(nil, data), 0o644); err != nil {
				die("%v", err)
			}
		}
		for m, opts := range streamModes {
			if err := os.WriteFile(filepath.Join(out, f+"."+m), encodeStream(data, opts), 0o644); err != nil {
				die("%v", err)
			}
		}
	}
}

func checkDir(in, encDir string) {
	failed := 0
	for _, f := range files(encDir) {
		dot := strings.LastIndex(f, ".")
		if dot < 0 {
			continue
		}
		name, kind := f[:dot], f[dot+1:]
		want, err := os.ReadFile(filepath.Join(in, name))
		if err != nil {
			die("%v", err)
		}
		enc, err := os.ReadFile(filepath.Join(encDir, f))
		if err != nil {
			die("%v", err)
		}
		var got []byte
		switch {
		case strings.HasPrefix(kind, "block"):
			got, err = s2.Decode(nil, enc)
		case strings.HasPrefix(kind, "stream"):
			got, err = decodeStream(enc)
		default:
			continue
		}
		if err == nil && !bytes.Equal(got, want) {
			err = fmt.Errorf("output differs (%d bytes, want %d)", len(got), len(want))
		}
		if err != nil {
			failed++
			fmt.Printf("FAIL go-decode %s: %v\n", f, err)
		} else {
			fmt.Printf("PASS go-decode %s\n", f)
		}
	}
	if failed > 0 {
		os.Exit(1)
	}
}

func bench(file string, frame int, level string) {
	data, err := os.ReadFile(file)
	if err != nil {
		die("%v", err)
	}
	var enc func(dst, src []byte) []byte
	switch level {
	case "default":
		enc = s2.Encode
	case "better":
		enc = s2.EncodeBetter
	case "best":
		enc = s2.EncodeBest
	default:
		die("unknown level %q", level)
	}
	var frames [][]byte
	for i := 0; i < len(data); i += frame {
		end := i + frame
		if end > len(data) {
			end = len(data)
		}
		frames = append(frames, data[i:end])
	}
	comp := make([][]byte, len(frames))
	for i := range comp {
		comp[i] = make([]byte, s2.MaxEncodedLen(len(frames[i])))
	}
	dec := make([]byte, frame)
	// Warm up once, then time whole passes until ~0.3 s has elapsed.
	total := 0
	for i, f := range frames {
		total += len(enc(comp[i], f))
	}
	passes := 0
	start := time.Now()
	for passes == 0 || time.Since(start) < 300*time.Millisecond {
		for i, f := range frames {
			comp[i] = enc(comp[i][:cap(comp[i])], f)
		}
		passes++
	}
	encNs := float64(time.Since(start).Nanoseconds()) / float64(passes)
	dpasses := 0
	start = time.Now()
	for dpasses == 0 || time.Since(start) < 300*time.Millisecond {
		for i := range frames {
			out, err := s2.Decode(dec, comp[i])
			if err != nil || len(out) != len(frames[i]) {
				die("decode failed")
			}
		}
		dpasses++
	}
	decNs := float64(time.Since(start).Nanoseconds()) / float64(dpasses)
	fmt.Printf("{\"input\":%d,\"compressed\":%d,\"encode_ns\":%.0f,\"decode_ns\":%.0f}\n", len(data), total, encNs, decNs)
}

func main() {
	if len(os.Args) < 2 {
		die("usage: see source")
	}
	switch os.Args[1] {
	case "encode-dir":
		encodeDir(os.Args[2], os.Args[3])
	case "check-dir":
		checkDir(os.Args[2], os.Args[3])
	case "decode-block", "decode-stream":
		in, err := io.ReadAll(os.Stdin)
		if err != nil {
			die("%v", err)
		}
		var out []byte
		if os.Args[1] == "decode-block" {
			out, err = s2.Decode(nil, in)
		} else {
			out, err = decodeStream(in)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "s2ref: %v\n", err)
			os.Exit(1)
		}
		os.Stdout.Write(out)
	case "bench":
		frame, err := strconv.Atoi(os.Args[3])
		if err != nil {
			die("%v", err)
		}
		bench(os.Args[2], frame, os.Args[4])
	default:
		die("unknown command %q", os.Args[1])
	}
}
