// Command app is the unmodified net/http program that the OpenTelemetry Go
// auto-instrumentation agent attaches to: it imports nothing from
// OpenTelemetry, so every span ashiato stores comes from the eBPF probes.
//
// Usage: app ADDR. It prints "listening on ADDR" once it accepts
// connections.
package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: app ADDR")
	}
	listener, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	base := "http://" + listener.Addr().String()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /stock/{sku}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s: 3 left\n", r.PathValue("sku"))
	})
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user %s\n", r.PathValue("id"))
	})
	mux.HandleFunc("GET /fail", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "payment backend unavailable", http.StatusInternalServerError)
	})
	// An outgoing call made the idiomatic way (the request's context), so
	// the agent's client probe can tie it to this handler's server span.
	mux.HandleFunc("GET /checkout/{sku}", func(w http.ResponseWriter, r *http.Request) {
		url := base + "/stock/" + r.PathValue("sku")
		request, err := http.NewRequestWithContext(r.Context(), http.MethodGet, url, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		response, err := http.DefaultClient.Do(request)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer response.Body.Close()
		body, _ := io.ReadAll(response.Body)
		fmt.Fprintf(w, "stock service said %s", body)
	})

	fmt.Printf("listening on %s\n", listener.Addr())
	log.Fatal(http.Serve(listener, mux))
}
