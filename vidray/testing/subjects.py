"""The catalogue of visual subjects a sample video shows, each with sentences that name it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Subject:
    name: str
    shape: str  # how it is drawn: see vidray.testing.draw
    color: tuple[int, int, int]
    background: tuple[int, int, int]
    sentences: tuple[str, ...]


def _s(name: str, shape: str, color: str, background: str, *sentences: str) -> Subject:
    def rgb(hex_: str) -> tuple[int, int, int]:
        return (int(hex_[0:2], 16), int(hex_[2:4], 16), int(hex_[4:6], 16))

    return Subject(name, shape, rgb(color), rgb(background), sentences)


SUBJECTS: tuple[Subject, ...] = (
    _s("tomato", "circle", "e0301e", "f4efe6",
       "now I slice the tomato with a sharp knife",
       "this ripe tomato is red and juicy",
       "we chop the tomato for a fresh salad"),
    _s("carrot", "triangle", "f28c28", "2f5d34",
       "peel the carrot and cut it into thin sticks",
       "the orange carrot is sweet and crunchy",
       "grate the carrot over the bowl"),
    _s("onion", "ring", "c9a0dc", "3a2a1a",
       "dice the onion very finely",
       "the onion makes my eyes water",
       "fry the onion in butter until golden"),
    _s("bread", "square", "c68642", "fdf5e6",
       "bake the bread in a hot oven",
       "cut a thick slice of fresh bread",
       "the bread has a crisp brown crust"),
    _s("cheese", "triangle", "ffd84d", "40306a",
       "grate the cheese over the pasta",
       "this cheese is soft and creamy",
       "melt the cheese on the toast"),
    _s("apple", "circle", "5fbf3f", "5a1e1e",
       "the green apple is crisp and sour",
       "peel the apple and remove the core",
       "bake the apple with some cinnamon"),
    _s("banana", "hstripes", "f5e050", "1f3f7f",
       "mash the banana with a fork",
       "the yellow banana is ripe and sweet",
       "slice the banana over the cereal"),
    _s("lemon", "diamond", "fff44f", "1b6e5a",
       "squeeze the lemon into the water",
       "the lemon juice is very sour",
       "grate the lemon peel into the cake"),
    _s("egg", "ring", "fffaf0", "d2691e",
       "crack the egg into the hot pan",
       "whisk the egg with a little milk",
       "boil the egg for ten minutes"),
    _s("fish", "diamond", "6fa8dc", "0b2545",
       "the fish swims in the cold river",
       "grill the fish with salt and pepper",
       "the silver fish has shiny scales"),
    _s("boat", "square", "ffffff", "1e6fd9",
       "the boat sails across the calm lake",
       "we row the small boat to the shore",
       "the old boat needs new paint"),
    _s("mountain", "triangle", "8a8f99", "9fd3ff",
       "the mountain peak is covered in snow",
       "we climb the steep mountain trail",
       "the mountain rises above the clouds"),
    _s("tree", "circle", "1f7a1f", "c7e9ff",
       "the tall tree has green leaves",
       "plant the tree in the garden",
       "the tree branches sway in the wind"),
    _s("car", "square", "d62828", "bcbcbc",
       "the red car drives down the road",
       "wash the car with soap and water",
       "the car engine is very loud"),
    _s("bicycle", "ring", "202020", "f1c40f",
       "ride the bicycle along the path",
       "the bicycle has a flat tire",
       "pump air into the bicycle wheel"),
    _s("house", "triangle", "8b0000", "f0e68c",
       "the house has a blue door",
       "paint the walls of the house",
       "the old house stands on the hill"),
    _s("guitar", "vstripes", "8b4513", "f5deb3",
       "play the guitar with your fingers",
       "tune the guitar strings carefully",
       "the guitar sounds warm and bright"),
    _s("dog", "cross", "a0522d", "98fb98",
       "the dog runs across the park",
       "feed the dog after the walk",
       "the happy dog wags its tail"),
    _s("cat", "cross", "ff8c00", "2e2e2e",
       "the cat sleeps on the warm chair",
       "the cat chases a small mouse",
       "brush the soft fur of the cat"),
    _s("ball", "circle", "ffffff", "228b22",
       "kick the ball into the goal",
       "throw the ball to your friend",
       "the ball bounces on the floor"),
    _s("clock", "ring", "000000", "ffffff",
       "the clock shows ten past nine",
       "wind the clock every morning",
       "the old clock ticks on the wall"),
    _s("book", "hstripes", "800020", "fffdd0",
       "open the book to the first page",
       "read the book before bed",
       "this book tells a long story"),
    _s("cup", "vstripes", "4169e1", "ffe4e1",
       "pour hot tea into the cup",
       "wash the cup in the sink",
       "the cup is full of coffee"),
    _s("pizza", "diamond", "ff6347", "ffebcd",
       "spread the sauce on the pizza dough",
       "the pizza comes out of the oven",
       "cut the pizza into eight slices"),
)  # fmt: skip

# Narrators open some sentences with filler and discourse markers; they must never become labels.
FILLERS: tuple[str, ...] = ("okay so", "um", "you know", "alright now", "so")
