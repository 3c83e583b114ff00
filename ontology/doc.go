// Package ontology imports biological ontologies and gene tables and answers
// the questions curation asks of them: is this value a term (validate),
// which term does it mean (standardize), what is wrong with this column
// (inspect), which terms match this text (search), and what lies above or
// below a term (hierarchy). It is the part of Lamina that Bionty is for
// LaminDB, and it works offline once a source is imported.
//
// # Sources
//
// A Source is one version of one ontology for one entity: its Terms plus
// where they came from (Entity, Ontology, Version, Organism, and the SHA-256
// Digest of the bytes read, decompressed, so importing the same content twice,
// plain or gzipped, is recognisable).
// Import reads a path or an http(s) URL; Read reads any io.Reader. Both
// understand OBO 1.2/1.4, the cellxgene-ontology-guide JSON term lists, the
// GO.db term table and gene tables (org.Hs.eg.db export, GENCODE CSV),
// telling them apart by content, and decompress gzip found by its magic
// bytes. Malformed input fails as a whole with a *SyntaxError naming the
// file and line: a caller never gets half a source.
//
// OBO files are read as the OBO 1.4 syntax says, with the allowances real
// 1.2 releases need (see ../shared/data/OBO_PITFALLS.md): a file that
// declares format-version 1.4 must obey 1.4 (one name per term, scoped
// synonyms, two or more intersection_of), while a 1.2 file gets a warning
// for the same faults. Relations are normalised through [Typedef] xrefs so
// that part_of, BFO:0000050 and a local alias are one edge; GCI edges, which
// hold only within a taxon, are dropped.
//
// Marshal and Unmarshal turn a Source into a compact, versioned, checksummed
// blob for the catalog to store, so an index can be rebuilt without the
// original file.
//
// # Index files
//
// Building an Index takes seconds for a large ontology (Mondo: ~2 s of
// CPU, most of it the fuzzy-search structures), too much for every
// process. An Index is therefore flat: numbers in arrays over one string
// table, with hash tables for names and synonyms (tables.go). Build
// computes the arrays; MarshalIndex writes them as they are, with a header
// naming the format (IndexFormat) and the source digest and a CRC-32C;
// LoadIndex checks header, checksum and ranges and uses the bytes in place
// (a few ms for Mondo, no parsing, no maps to fill). Built and loaded
// indexes run the same code on the same arrays, so they answer the same;
// a corrupt, truncated or stale file fails with ErrIndex and the caller
// rebuilds it. See indexfile.go for the layout.
//
// # Entities
//
// An entity is a kind of metadata value: celltype (CL), tissue (UBERON),
// disease (MONDO), phenotype (HP), pathway (GO), experimental_factor (EFO),
// organism (NCBITaxon), developmental_stage (HsapDv or MmusDv by organism)
// and gene (an Ensembl gene table). Any other lowercase name is a custom
// entity whose ontology is whatever file is imported. Import checks that
// the file fits the entity, so phenotypes are not imported as cell types.
//
// # Matching
//
// Build makes an Index of a Source. Validate is strict, as Bionty's is: the
// exact name or id, case-sensitive; an obsolete term does not validate and
// its message names the replacement. Standardize is forgiving in a fixed
// order: exact name, id or alt_id, name ignoring case and white space,
// EXACT synonym, RELATED synonym (only when asked), and an obsolete term's
// replacement, followed through obsolete replacements to a live term
// (Replacement; a loop or a chain leaving the source ends in none), also
// for an obsolete term's name without its "obsolete " prefix. A RELATED
// synonym of several terms is never used, but named (Related). Only EXACT synonyms are used by default because the others
// are broader, narrower or merely related terms. BROAD and NARROW ones are
// never used, but a value equal to one is told which terms it is a
// synonym of (Standardization.Leads), as one equal to a RELATED synonym is. An obsolete term's
// synonyms are never used, but a value equal to one of its EXACT synonyms
// is told which obsolete term it names and what replaces it. A value that fits several
// terms with different names (the gene alias CD20 is MS4A1 and KRT20) is
// reported Ambiguous with the candidates; it is never guessed. A gene
// table can give one Ensembl id to several NCBI genes (ADAMTSL4-AS1 and
// MCL1): the first symbol names the term and the others are Symbol
// synonyms, official names that validate and standardize to themselves
// (never to the other gene's symbol). A name several terms share (PTPRC
// on two Ensembl ids, mostly alternate haplotypes of one gene; GENCODE's
// A2MP1) is their standard name, no guess among them: it validates and
// standardizes to itself, ID is empty and IDs (TermIDs) lists every term,
// which an annotation records; Reason and Message name them. An alias of
// such terms only stays one match too. Inspect
// combines the two for a column and offers up to three suggestions for
// values that match nothing: the same words up to plurals ("T cells" ->
// "T cell"), close by edit distance ("dendritc cell" -> "dendritic
// cell"), or made of a good share of the value's words ("peripheral
// blood" -> "blood").
//
// Search ranks exact names and ids (ignoring case and white space), names
// equal up to plural endings and punctuation ("B cells" for "B cell":
// normalized, not exact, as validate would not accept them), exact
// synonyms, synonyms equal up to plurals and punctuation, name prefixes,
// names or synonyms holding every query word (as a phrase first), those
// holding every word or a word starting with it, those made of a good
// share of the query's words, then fuzzy matches; obsolete terms only when
// asked. Words
// are letter-or-digit runs compared without a plural ending; a one-letter
// query word counts as a word prefix for little ("T" starts half the words
// of CL). Fuzzy matching shortlists candidates by shared trigrams and
// orders them by edit distance.
//
// # Hierarchy
//
// Parents, Children, Ancestors and Descendants follow is_a, part_of or both
// (Relation flags), breadth-first and safe on cycles. Parents outside the
// source (an imported BFO term) are reported but not followed. The
// cellxgene JSON lists only a closure over is_a and part_of together, so its
// direct ancestors are read as parents (Parents), and the source says so
// (Source.MixedParents): is_a walks there follow part_of too.
//
// A walk starts from an id, alt_id or name. A name several terms have (the
// Uberon module's "anatomical entity", CARO:0000000 and UBERON:0001062; a
// gene symbol on two Ensembl ids; or, with no live term of it, several
// obsolete ones) is refused with an *AmbiguousError (ErrAmbiguous) listing
// them, as are Term and Resolve: taking the first in the file answered
// for a term the caller may not mean. Standardize maps such an obsolete
// name only when its terms are replaced alike (followed through obsolete
// replacements); otherwise it is Ambiguous between the replacements.
//
// An Index is immutable and safe for concurrent use.
package ontology
