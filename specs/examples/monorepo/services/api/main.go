// Command api serves the monorepo's HTTP API.
package main

import (
	"net/http"

	"example.com/monorepo/api/internal/greet"
)

const Version = "0.3.0"

// route: /health {"status":"ok"}
// route: /version {"service":"api","version":"0.3.0"}
// route: /hello {"message":"hello from api"}

func main() {
	http.HandleFunc("/hello", greet.Handler)
	http.ListenAndServe(":8080", nil)
}
