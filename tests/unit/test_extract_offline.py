"""OfflineExtractor: deterministic, title-centred, and good enough to chain entities across passages."""

from __future__ import annotations

from memserve.extract import Extractor, OfflineExtractor, Triple, normalize_phrase

FILM = ("Jaws (film)\nJaws is a 1975 thriller film directed by Steven Spielberg and produced by Universal "
        "Pictures. It stars Roy Scheider as police chief Martin Brody. The film premiered on June 20, 1975.")
DIRECTOR = ("Steven Spielberg\nSteven Spielberg (born December 18, 1946) is an American film director. He is "
            "married to Kate Capshaw. Spielberg co-founded DreamWorks Pictures in 1994.")
JOURNAL = ("Film Journal International\nFilm Journal International is a trade magazine published by "
           "Prometheus Global Media. It is a sister publication of \"Adweek\", \"Billboard\", and "
           "\"The Hollywood Reporter\".")


def keys(result_entities: tuple[str, ...]) -> set[str]:
    return {normalize_phrase(e) for e in result_entities}


def edges(triples: tuple[Triple, ...]) -> set[tuple[str, str, str]]:
    return {(normalize_phrase(t.subject), normalize_phrase(t.predicate), normalize_phrase(t.object))
            for t in triples}


def test_satisfies_protocol_and_is_deterministic() -> None:
    extractor = OfflineExtractor()
    assert isinstance(extractor, Extractor)
    first = extractor.extract([FILM, DIRECTOR, JOURNAL])
    second = OfflineExtractor().extract([FILM, DIRECTOR, JOURNAL])
    assert first == second
    assert all(r.ok and r.dropped_triples == 0 for r in first)


def test_entities_cover_names_titles_dates_and_quotes() -> None:
    film, director, journal = OfflineExtractor().extract([FILM, DIRECTOR, JOURNAL])
    assert {"jaws", "steven spielberg", "universal pictures", "roy scheider", "martin brody", "june 20 1975",
            "1975"} <= keys(film.entities)
    assert "jaws film" not in keys(film.entities)  # disambiguator stripped from the title
    assert {"steven spielberg", "december 18 1946", "kate capshaw", "dreamworks pictures", "1994"} \
        <= keys(director.entities)
    assert "american" not in keys(director.entities)  # demonym before a noun is an adjective
    assert "spielberg" not in keys(director.entities)  # the short name maps to the full one
    assert {"film journal international", "prometheus global media", "adweek", "billboard",
            "the hollywood reporter"} <= keys(journal.entities)
    assert not keys(film.entities) & {"it", "the", "the film", "he"}


def test_relations_link_title_and_resolve_pronouns() -> None:
    film, director, journal = OfflineExtractor().extract([FILM, DIRECTOR, JOURNAL])
    film_edges = edges(film.triples)
    assert ("jaws", "thriller film directed by", "steven spielberg") in film_edges
    assert ("jaws", "stars", "roy scheider") in film_edges  # "It stars ..." → the title
    assert ("jaws", "premiered on", "june 20 1975") in film_edges  # "The film premiered ..." → the title
    assert ("steven spielberg", "is married to", "kate capshaw") in edges(director.triples)
    sister = {t for t in edges(journal.triples) if t[1] == "is a sister publication of"}
    assert {t[2] for t in sister} == {"adweek", "billboard", "the hollywood reporter"}


def test_every_entity_hangs_off_the_title() -> None:
    for result in OfflineExtractor().extract([FILM, DIRECTOR, JOURNAL]):
        title = normalize_phrase(result.entities[0])
        linked = {t[2] for t in edges(result.triples) if t[0] == title} | \
            {t[0] for t in edges(result.triples) if t[2] == title}
        assert keys(result.entities) - {title} <= linked


def test_two_hop_chain_shares_a_node() -> None:
    """'Who is the spouse of the director of Jaws?': film → director in one passage, director → spouse in the
    other, joined by the same normalised phrase."""
    film, director = OfflineExtractor().extract([FILM, DIRECTOR])
    hop1 = {o for s, _, o in edges(film.triples) if s == "jaws"}
    hop2 = {o for s, _, o in edges(director.triples) if s in hop1}
    assert "steven spielberg" in hop1 and "kate capshaw" in hop2


def test_no_title_and_odd_inputs() -> None:
    extractor = OfflineExtractor()
    empty, blank, chat = extractor.extract(["", "   \n  ", "I met Alice Smith at Google in Zurich last week."])
    assert empty.entities == () and empty.triples == () and blank.entities == ()
    assert {"alice smith", "google", "zurich"} <= keys(chat.entities)
    assert ("alice smith", "at", "google") in edges(chat.triples)


def test_initials_and_abbreviations_do_not_split_names() -> None:
    (result,) = OfflineExtractor().extract(["The editor George T. Solomon met Dr. Smith at MIT. He left."])
    assert {"george t solomon", "smith", "mit"} <= keys(result.entities)
    assert not keys(result.entities) & {"dr", "dr smith", "george t", "t solomon"}
