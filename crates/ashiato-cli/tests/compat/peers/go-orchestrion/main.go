// Command orders is the Orchestrion peer of ashiato's compatibility matrix:
// a plain net/http + chi service. Its tracing is woven in at build time by
// `orchestrion go build` (dd-trace-go v2): the tracer starts in main, the
// net/http server gets a root span per request, and functions marked
// `//dd:span` become child spans.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/DataDog/dd-trace-go/v2/ddtrace/ext"
	"github.com/DataDog/dd-trace-go/v2/ddtrace/tracer"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// PaymentDeclined is the app's own error: a failing charge.
type PaymentDeclined struct{ OrderID string }

func (e *PaymentDeclined) Error() string {
	return fmt.Sprintf("payment declined for order %s", e.OrderID)
}

func main() {
	addr := os.Getenv("ORDERS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	server := &http.Server{Addr: addr, Handler: routes()}
	log.Printf("orders listening on %s", addr)
	log.Fatal(server.ListenAndServe())
}

func routes() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Use(routeResource)
	r.Get("/users/{id}", getUser)
	r.Post("/orders/{id}/charge", chargeOrder)
	r.Get("/reports/{id}", buildReport)
	return r
}

// routeResource names the request's root span after chi's route pattern
// (`GET /users/{id}`) instead of the raw path, as a chi user without the
// chi integration does.
func routeResource(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			span, ok := tracer.SpanFromContext(r.Context())
			pattern := chi.RouteContext(r.Context()).RoutePattern()
			if ok && pattern != "" {
				span.SetTag(ext.ResourceName, r.Method+" "+pattern)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func getUser(w http.ResponseWriter, r *http.Request) {
	user := loadUser(r.Context(), chi.URLParam(r, "id"))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(user)
}

//dd:span span.name:user.load db.system:memory component:repository
func loadUser(ctx context.Context, id string) map[string]string {
	if span, ok := tracer.SpanFromContext(ctx); ok {
		span.SetTag("user.id", id)
	}
	return map[string]string{"id": id, "name": "user " + id}
}

func chargeOrder(w http.ResponseWriter, r *http.Request) {
	if err := charge(r.Context(), chi.URLParam(r, "id")); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

//dd:span span.name:payment.charge payment.provider:acme
func charge(ctx context.Context, orderID string) (err error) {
	return &PaymentDeclined{OrderID: orderID}
}

func buildReport(w http.ResponseWriter, r *http.Request) {
	var totals map[string]int
	totals[chi.URLParam(r, "id")]++ // a nil map: panics, chi's Recoverer answers 500
	w.WriteHeader(http.StatusOK)
}
