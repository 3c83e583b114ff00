package ontology

import (
	"cmp"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Entity is a kind of metadata value and the ontology that standardises it.
type Entity struct {
	Name        string
	Ontology    string            // the ontology for every organism, or ""
	ByOrganism  map[string]string // organism -> ontology, when it depends on it
	Description string
}

// OntologyFor returns the ontology of e for an organism ("" when it
// depends on the organism and none is given).
func (e Entity) OntologyFor(organism string) string {
	if e.Ontology != "" {
		return e.Ontology
	}
	return e.ByOrganism[NormalizeOrganism(organism)]
}

var entities = []Entity{
	{Name: "celltype", Ontology: "CL", Description: "cell types (Cell Ontology)"},
	{Name: "tissue", Ontology: "UBERON", Description: "tissues and anatomy (Uberon)"},
	{Name: "disease", Ontology: "MONDO", Description: "diseases (Mondo)"},
	{Name: "phenotype", Ontology: "HP", Description: "phenotypes (Human Phenotype Ontology)"},
	{Name: "pathway", Ontology: "GO", Description: "pathways and processes (Gene Ontology)"},
	{Name: "experimental_factor", Ontology: "EFO", Description: "assays and experimental factors (EFO)"},
	{Name: "organism", Ontology: "NCBITaxon", Description: "organisms (NCBI Taxonomy)"},
	{Name: "developmental_stage", ByOrganism: map[string]string{"human": "HsapDv", "mouse": "MmusDv"},
		Description: "developmental stages (HsapDv for human, MmusDv for mouse)"},
	{Name: "gene", Ontology: "Ensembl", Description: "genes: Ensembl id, symbol, aliases, biotype, per organism"},
}

// Entities returns the built-in entities. Any other lowercase name is a
// custom entity whose ontology comes from the imported OBO file.
func Entities() []Entity {
	out := make([]Entity, len(entities))
	copy(out, entities)
	return out
}

// LookupEntity returns the built-in entity of that name.
func LookupEntity(name string) (Entity, bool) {
	for _, e := range entities {
		if e.Name == name {
			return e, true
		}
	}
	return Entity{}, false
}

var reEntity = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// ValidEntityName reports whether name can name a custom entity.
func ValidEntityName(name string) bool { return reEntity.MatchString(name) }

// NormalizeOrganism maps common spellings to "human" and "mouse" and
// returns anything else lowercased.
func NormalizeOrganism(s string) string {
	switch o := strings.ToLower(strings.TrimSpace(s)); o {
	case "human", "homo sapiens", "homo_sapiens", "hsapiens", "ncbitaxon:9606", "9606":
		return "human"
	case "mouse", "mus musculus", "mus_musculus", "mmusculus", "ncbitaxon:10090", "10090":
		return "mouse"
	default:
		return o
	}
}

// resolveEntity fills Entity, Ontology and Organism and checks that the
// file fits the entity, so that importing hp.obo as celltype fails loudly.
func resolveEntity(src *Source, name string, opts ImportOptions) error {
	if !ValidEntityName(opts.Entity) {
		return fmt.Errorf("ontology: %q is not a valid entity name (lowercase letters, digits, _)", opts.Entity)
	}
	src.Entity = opts.Entity
	org := NormalizeOrganism(opts.Organism)
	e, builtin := LookupEntity(opts.Entity)
	if !builtin {
		if org != "" {
			src.Organism = org
		}
		return nil
	}
	if opts.Entity == "gene" {
		if src.Ontology != "Ensembl" {
			return fmt.Errorf("ontology: %s is not a gene table (Ensembl id, symbol, ...)", name)
		}
		if org != "" && src.Organism != "" && org != src.Organism {
			return fmt.Errorf("ontology: %s holds %s genes, not %s", name, src.Organism, org)
		}
		if src.Organism == "" {
			src.Organism = org
		}
		return nil
	}
	want := e.OntologyFor(org)
	if want == "" { // per organism and none given: let the ids tell
		var found []string
		for _, o := range slices.Sorted(maps.Keys(e.ByOrganism)) {
			if n := countPrefix(src.Terms, e.ByOrganism[o]); n > 0 {
				want, org = e.ByOrganism[o], o
				found = append(found, fmt.Sprintf("%d %s terms (%s)", n, want, o))
			}
		}
		switch {
		case len(found) == 0:
			return fmt.Errorf("ontology: %s has no %s terms, which %s expects", name, strings.Join(slices.Sorted(maps.Values(e.ByOrganism)), " or "), e.Name)
		case len(found) > 1: // life-stages.obo: picking one would be a guess
			return fmt.Errorf("%w whose %s these are: %s has %s", ErrOrganism, e.Name, name, strings.Join(found, " and "))
		}
	}
	if countPrefix(src.Terms, want) == 0 {
		return fmt.Errorf("ontology: %s has no %s terms; %s expects %s", name, want, e.Name, want)
	}
	src.Ontology = want
	if e.Ontology == "" {
		src.Organism = org
		if w := otherOrganisms(src.Terms, e, want, org); w != "" {
			src.Warnings = append([]string{name + ": " + w}, src.Warnings...) // first: the CLI shows five
		}
	}
	return nil
}

// otherOrganisms warns of the terms of another organism's ontology in a
// source imported for org (want its prefix): life-stages.obo holds every
// species' stages, and imported with --organism mouse its 260 HsapDv terms
// validate as mouse stages. It counts the terms of every other prefix.
func otherOrganisms(terms []Term, e Entity, want, org string) string {
	other := false
	for _, ont := range e.ByOrganism {
		other = other || (ont != want && countPrefix(terms, ont) > 0)
	}
	if !other {
		return ""
	}
	count := map[string]int{}
	for i := range terms {
		if p, _, ok := strings.Cut(terms[i].ID, ":"); ok && p != want {
			count[p]++
		}
	}
	prefixes := slices.SortedFunc(maps.Keys(count), func(a, b string) int {
		return cmp.Or(count[b]-count[a], strings.Compare(a, b))
	})
	n, parts := 0, make([]string, 0, 5)
	for k, p := range prefixes {
		n += count[p]
		if k < 5 {
			parts = append(parts, fmt.Sprintf("%s %d", p, count[p]))
		}
	}
	list := strings.Join(parts, ", ")
	if len(prefixes) > 5 {
		list += fmt.Sprintf(", … (%d prefixes)", len(prefixes))
	}
	return fmt.Sprintf("%d terms besides the %s ones were imported (%s), other organisms' among them: they validate as %s %s terms too; import the %s ontology's own file for %s only",
		n, want, list, org, e.Name, want, org)
}

func countPrefix(terms []Term, prefix string) int {
	n := 0
	for i := range terms {
		if strings.HasPrefix(terms[i].ID, prefix+":") {
			n++
		}
	}
	return n
}
