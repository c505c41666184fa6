package redisstore

import (
	"encoding/json"
	"testing"

	"github.com/switchboard-run/switchboard/runtime/store"
)

// decodeRoute reads what encoding/json reads, on its fast path and off it.
func TestDecodeRoute(t *testing.T) {
	var docs []string
	for _, r := range []store.Route{
		{SubscriptionID: "sub_1", ConnectionID: "conn_1", CustomerID: "cust_1", EventKey: "message-posted"},
		{},
		{SubscriptionID: `q"uote`, ConnectionID: `back\slash`, CustomerID: "<&>", EventKey: "line\u2028sep é"},
	} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	docs = append(docs,
		`{"c":"c","s":"s","o":"o","e":"e"}`,       // another order
		`{"s":"s","c":"c","o":"o","e":"e","x":1}`, // an extra field
		`{"s":"s","c":"c","o":"o"}`,               // a missing one
		` {"s":"s","c":"c","o":"o","e":"e"}`,      // space
		`{"s":"s","c":"c","o":"o","e":"e"} `,      // trailing space
		`{"s":"s","c":"c","o":"o","e":"e"`,        // cut short: an error
		`{"s":"s","c":"c","o":"o","e":"e"}x`,      // trailing data: an error
		`{"s":1,"c":"c","o":"o","e":"e"}`,         // a number: an error
	)
	for _, doc := range docs {
		var want store.Route
		wantErr := json.Unmarshal([]byte(doc), &want)
		var got store.Route
		err := decodeRoute(doc, &got)
		if (err != nil) != (wantErr != nil) || (err == nil && got != want) {
			t.Errorf("%s: got %+v, %v; want %+v, %v", doc, got, err, want, wantErr)
		}
	}
}

func BenchmarkDecodeRoute(b *testing.B) {
	doc, _ := json.Marshal(store.Route{SubscriptionID: "sub_01JD8", ConnectionID: "conn_01JD8", CustomerID: "cust_42", EventKey: "message-posted"})
	b.ReportAllocs()
	for b.Loop() {
		var r store.Route
		if err := decodeRoute(string(doc), &r); err != nil {
			b.Fatal(err)
		}
	}
}
