package router

import (
	"errors"
	"testing"
)

func TestChannelEventSubject(t *testing.T) {
	tests := []struct {
		name, org, integration, channel, eventType string
		want                                       string
	}{
		{"plain type", "cust_42", "shop", "orders", "created", "events.cust_42.apps.app.event_received.shop.orders.created"},
		{"dotted type", "cust_42", "shop", "orders", "order.created", "events.cust_42.apps.app.event_received.shop.orders.order.created"},
		{"colon in type", "cust_42", "shop", "orders", "order:created", "events.cust_42.apps.app.event_received.shop.orders.order:created"},
		{"empty type", "cust_42", "shop", "orders", "", ""},
		{"empty part of type", "cust_42", "shop", "orders", "order..created", ""},
		{"leading dot", "cust_42", "shop", "orders", ".created", ""},
		{"trailing dot", "cust_42", "shop", "orders", "created.", ""},
		{"wildcard type", "cust_42", "shop", "orders", "order.*", ""},
		{"full wildcard type", "cust_42", "shop", "orders", ">", ""},
		{"space in type", "cust_42", "shop", "orders", "order created", ""},
		{"dot in channel", "cust_42", "shop", "or.ders", "created", ""},
		{"empty organization", "", "shop", "orders", "created", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ChannelEventSubject(tt.org, tt.integration, tt.channel, tt.eventType)
			if tt.want == "" {
				if !errors.Is(err, ErrInvalidSubjectToken) {
					t.Fatalf("ChannelEventSubject = %q, %v; want ErrInvalidSubjectToken", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ChannelEventSubject = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
