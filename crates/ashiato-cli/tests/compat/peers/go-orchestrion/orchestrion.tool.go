// Written like `orchestrion pin` writes it, but listing only the integrations
// this service uses: `orchestrion pin` would import
// github.com/DataDog/dd-trace-go/orchestrion/all/v2, which the module proxy
// does not serve here (and neither does the chi integration,
// github.com/DataDog/dd-trace-go/contrib/go-chi/chi.v5/v2).

//go:build tools

package tools

// Imports in this file determine which tracer integrations orchestrion weaves
// into the build.
import (
	// Ensures `orchestrion` is present in `go.mod` so that builds are repeatable.
	_ "github.com/DataDog/orchestrion" // integration

	_ "github.com/DataDog/dd-trace-go/contrib/net/http/v2" // integration
	_ "github.com/DataDog/dd-trace-go/v2/ddtrace/tracer"   // integration
)
