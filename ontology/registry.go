package ontology

import (
	"fmt"
	"regexp"
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
		for o, ont := range e.ByOrganism {
			if countPrefix(src.Terms, ont) > 0 {
				want, org = ont, o
				break
			}
		}
		if want == "" {
			return fmt.Errorf("ontology: %s: give the organism for %s (%v)", name, e.Name, e.ByOrganism)
		}
	}
	if countPrefix(src.Terms, want) == 0 {
		return fmt.Errorf("ontology: %s has no %s terms; %s expects %s", name, want, e.Name, want)
	}
	src.Ontology = want
	if e.Ontology == "" {
		src.Organism = org
	}
	return nil
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
