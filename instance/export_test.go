package instance

import "github.com/lamina-bio/lamina/ontology"

// ForgetOntologyIndexes empties the process cache of indexes, so that the
// next LoadOntology reads as a new process would.
func ForgetOntologyIndexes() {
	indexes.mu.Lock()
	defer indexes.mu.Unlock()
	indexes.m, indexes.order = map[string]*ontology.Index{}, nil
}

// FindInnerOwner is findInnerOwner, for a test with a folder it may not read.
var FindInnerOwner = findInnerOwner
