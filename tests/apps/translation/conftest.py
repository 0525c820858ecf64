"""Fixture Debian packages holding gettext catalogues, shared by the acquire and builder tests."""

import pytest

from tests.apps.translation import fixtures

SPECIAL_FR = {
    "Save file as %s": "Enregistrer le fichier sous %s",
    "Open {0} now": "Ouvrir {0} maintenant",
    "<b>Bold</b> text here": "<b>Gras</b> texte ici",
    "_Quit the program": "_Quitter le programme",
    "menu label\x04Print the page": "Imprimer la page",
    "One red file\x00%d red files": "Un fichier rouge\x00%d fichiers rouges",
    "Line one\nline two": "Ligne un\nligne deux",
    "Untranslated words": "Untranslated words",
    "Single": "Seul",
    "failed to delete NOTES_MERGE_REF now": "impossible de supprimer NOTES_MERGE_REF maintenant",
    "Use &Drag and drop": "Utiliser &glisser-déposer",
    "Drag & drop files": "Glisser & déposer des fichiers",
    " ".join(["word"] * 25): " ".join(["mot"] * 25),
}


@pytest.fixture(scope="session")
def packages(tmp_path_factory):
    """`(directory of fixture-a_1.0 and fixture-b_2.0 .debs, the synthetic fr pairs)`."""
    root = tmp_path_factory.mktemp("debs")
    synthetic = fixtures.sentence_pairs(80, seed=1)
    fixtures.build_deb(str(root), "fixture-a", "1.0", {
        "fr": {"alpha": {**synthetic, **SPECIAL_FR}},
        "de": {"alpha": {"Open the red file": "Die rote Datei öffnen"}},
        "fr_CA": {"alpha": {"Close all windows": "Fermer toutes les fenêtres (CA)"}},
    })
    fixtures.build_deb(str(root), "fixture-b", "2.0", {
        "fr": {
            "beta": {"Quit the program": "Fermer le programme"},
            "gamma": {"QUIT  the program": "Fermer le programme",
                      "Show the blue menu now": "Afficher le menu bleu maintenant"},
        },
    })
    return str(root), synthetic
