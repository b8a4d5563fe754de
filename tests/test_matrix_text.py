import numpy as np
import pytest

from linalgformer.errors import UserError
from linalgformer.matrix_text import parse_matrix


@pytest.mark.parametrize("text", ["[[1,2],[2,1]]", "1 2; 2 1", "1,2\n2,1", " [[1, 2], [2, 1]] "])
def test_parse_forms(text):
    assert np.array_equal(parse_matrix(text), [[1, 2], [2, 1]])


def test_vector_is_one_row():
    assert parse_matrix("[1, 2, 3]").shape == (1, 3)


@pytest.mark.parametrize("text, word", [
    ("", "empty"), ("   ", "empty"), ("[[1,2],[3]]", "ragged"), ("1 2; 3", "ragged"),
    ("[[1,NaN]]", "finite"), ("1 nan; 2 3", "finite"), ("1 inf; 2 3", "finite"),
    ("[[1,nan],[2,3]]", "finite"), ("[[1,-inf],[2,3]]", "finite"), ("[[1,-Infinity],[2,3]]", "finite"),
    ("[[1,nano],[2,3]]", "not valid"),
    ("1 x; 2 3", "not a number"), ("[[1,[2]]]", "not a number"), ("[[1e300, 1]]", "too large"),
    ("[[1,2]", "not valid"), ('{"a": 1}', "not a number"), ("[[true, 1]]", "not a number"), ("[]", "no entries"),
])
def test_parse_rejects(text, word):
    with pytest.raises(UserError, match=word):
        parse_matrix(text)
