// Package greet answers /hello.
package greet

import "net/http"

// Handler writes the greeting.
func Handler(w http.ResponseWriter, r *http.Request) {
	w.Write([]byte(`{"message":"hello from api"}`))
}
