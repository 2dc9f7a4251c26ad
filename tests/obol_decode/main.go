// Command oboldecode reports, for each ServiceOffer it is given, whether obol-stack's x402
// verifier could decode it. obol-stack's internal/x402/serviceoffer_source.go decodes every
// offer in the cluster with runtime.DefaultUnstructuredConverter.FromUnstructured, and one
// error aborts the whole route reload, so an offer this program refuses stops route updates for
// every seller in that cluster.
//
// Input (stdin): a JSON array of objects. Output (stdout): one JSON line per object, in order,
// {"ok": true} or {"ok": false, "error": "..."}. Exit status 0 when the input was read (whatever
// the verdicts), 2 when it was not a JSON array of objects.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

type verdict struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(fmt.Errorf("read stdin: %w", err))
	}
	// The API machinery's JSON reader, so numbers become int64 or float64 exactly as in the
	// unstructured objects a dynamic informer hands the verifier.
	var docs []interface{}
	if err := utiljson.Unmarshal(data, &docs); err != nil {
		fail(fmt.Errorf("input is not a JSON array: %w", err))
	}
	out := json.NewEncoder(os.Stdout)
	for i, doc := range docs {
		obj, ok := doc.(map[string]interface{})
		if !ok {
			fail(fmt.Errorf("item %d is not a JSON object", i))
		}
		var offer serviceOffer
		v := verdict{OK: true}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &offer); err != nil {
			v = verdict{OK: false, Error: err.Error()}
		}
		if err := out.Encode(v); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "oboldecode:", err)
	os.Exit(2)
}
