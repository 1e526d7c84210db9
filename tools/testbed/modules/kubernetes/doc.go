// Package kubernetes is empty: this module exists only for its go.mod (see the comment there).
package kubernetes
