"""OpenIE: passages → named entities + (subject, predicate, object) triples.

``OfflineExtractor`` (regex, no network) is the default; ``LLMOpenIEExtractor`` uses the configured LLM.
Importing this package does not import litellm.
"""

from memserve.domain.extraction import ExtractionResult, Triple
from memserve.extract.base import Extractor
from memserve.extract.hipporag_cache import load_hipporag_openie
from memserve.extract.json_repair import repair_json
from memserve.extract.llm_openie import LLMOpenIEExtractor
from memserve.extract.normalize import clean_triples, normalize_phrase, unique_phrases
from memserve.extract.offline import OfflineExtractor

__all__ = ["ExtractionResult", "Extractor", "LLMOpenIEExtractor", "OfflineExtractor", "Triple", "clean_triples",
           "load_hipporag_openie", "normalize_phrase", "repair_json", "unique_phrases"]
