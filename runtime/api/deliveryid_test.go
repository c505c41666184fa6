package api

import (
	"net/http"
	"testing"
)

func TestDeliveryID(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		want   string
	}{
		{"none", http.Header{"Content-Type": {"application/json"}}, ""},
		{"github", http.Header{"X-Github-Delivery": {"72d3162e"}}, "X-Github-Delivery:72d3162e"},
		{"shopify", http.Header{"X-Shopify-Webhook-Id": {"b54557e4"}}, "X-Shopify-Webhook-Id:b54557e4"},
		{"standard webhooks", http.Header{"Webhook-Id": {"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"}}, "Webhook-Id:msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"},
		{"svix", http.Header{"Svix-Id": {"msg_p5jXN8AQM9LWM0D4loKWxJek"}}, "Svix-Id:msg_p5jXN8AQM9LWM0D4loKWxJek"},
		{"a request id is not a delivery id", http.Header{"X-Request-Id": {"r1"}}, ""},
		{"empty value", http.Header{"Webhook-Id": {""}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := deliveryID(tt.header); got != tt.want {
				t.Errorf("deliveryID = %q, want %q", got, tt.want)
			}
		})
	}
}
