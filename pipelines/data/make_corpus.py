#!/usr/bin/env python3
"""Builds the quickstart corpus: public-domain texts encoded character by character.

Vocabulary (48 ids, as in the spec's "helloworld" example, a=1 ... z=26):
  0 unused (padding), a..z -> 1..26, space 27, newline 28, . 29 , 30 ; 31 : 32
  ! 33 ? 34 ' 35 - 36 " 37, digits 0..9 -> 38..47. Letters are lower-cased;
  other characters are dropped.

Writes pipelines/data/corpus/{part-0,part-1}.parquet with columns
doc_id (string), source (string) and tokens (list<int32>), 4 documents per
row group. Run with pyarrow installed; the output is committed to the repo.
"""
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq

PUNCT = {" ": 27, "\n": 28, ".": 29, ",": 30, ";": 31, ":": 32, "!": 33, "?": 34, "'": 35, "-": 36, '"': 37}


def encode(text):
    out = []
    for ch in text.lower():
        if "a" <= ch <= "z":
            out.append(ord(ch) - ord("a") + 1)
        elif ch in PUNCT:
            out.append(PUNCT[ch])
        elif "0" <= ch <= "9":
            out.append(38 + ord(ch) - ord("0"))
    return out


TEXTS = {
    ("gettysburg-address", "speech"): """Four score and seven years ago our fathers brought forth on this continent, a new nation, conceived in Liberty, and dedicated to the proposition that all men are created equal.
Now we are engaged in a great civil war, testing whether that nation, or any nation so conceived and so dedicated, can long endure. We are met on a great battle-field of that war. We have come to dedicate a portion of that field, as a final resting place for those who here gave their lives that that nation might live. It is altogether fitting and proper that we should do this.
But, in a larger sense, we can not dedicate -- we can not consecrate -- we can not hallow -- this ground. The brave men, living and dead, who struggled here, have consecrated it, far above our poor power to add or detract. The world will little note, nor long remember what we say here, but it can never forget what they did here. It is for us the living, rather, to be dedicated here to the unfinished work which they who fought here have thus far so nobly advanced. It is rather for us to be here dedicated to the great task remaining before us -- that from these honored dead we take increased devotion to that cause for which they gave the last full measure of devotion -- that we here highly resolve that these dead shall not have died in vain -- that this nation, under God, shall have a new birth of freedom -- and that government of the people, by the people, for the people, shall not perish from the earth.""",
    ("constitution-preamble", "law"): """We the People of the United States, in Order to form a more perfect Union, establish Justice, insure domestic Tranquility, provide for the common defence, promote the general Welfare, and secure the Blessings of Liberty to ourselves and our Posterity, do ordain and establish this Constitution for the United States of America.""",
    ("declaration-opening", "law"): """When in the Course of human events, it becomes necessary for one people to dissolve the political bands which have connected them with another, and to assume among the powers of the earth, the separate and equal station to which the Laws of Nature and of Nature's God entitle them, a decent respect to the opinions of mankind requires that they should declare the causes which impel them to the separation.
We hold these truths to be self-evident, that all men are created equal, that they are endowed by their Creator with certain unalienable Rights, that among these are Life, Liberty and the pursuit of Happiness. That to secure these rights, Governments are instituted among Men, deriving their just powers from the consent of the governed.""",
    ("sonnet-18", "poetry"): """Shall I compare thee to a summer's day?
Thou art more lovely and more temperate:
Rough winds do shake the darling buds of May,
And summer's lease hath all too short a date;
Sometime too hot the eye of heaven shines,
And often is his gold complexion dimm'd;
And every fair from fair sometime declines,
By chance or nature's changing course untrimm'd;
But thy eternal summer shall not fade,
Nor lose possession of that fair thou ow'st;
Nor shall death brag thou wander'st in his shade,
When in eternal lines to time thou grow'st:
So long as men can breathe or eyes can see,
So long lives this, and this gives life to thee.""",
    ("sonnet-116", "poetry"): """Let me not to the marriage of true minds
Admit impediments. Love is not love
Which alters when it alteration finds,
Or bends with the remover to remove.
O no! it is an ever-fixed mark
That looks on tempests and is never shaken;
It is the star to every wand'ring bark,
Whose worth's unknown, although his height be taken.
Love's not Time's fool, though rosy lips and cheeks
Within his bending sickle's compass come;
Love alters not with his brief hours and weeks,
But bears it out even to the edge of doom.
If this be error and upon me prov'd,
I never writ, nor no man ever lov'd.""",
    ("sonnet-130", "poetry"): """My mistress' eyes are nothing like the sun;
Coral is far more red than her lips' red;
If snow be white, why then her breasts are dun;
If hairs be wires, black wires grow on her head.
I have seen roses damask'd, red and white,
But no such roses see I in her cheeks;
And in some perfumes is there more delight
Than in the breath that from my mistress reeks.
I love to hear her speak, yet well I know
That music hath a far more pleasing sound;
I grant I never saw a goddess go;
My mistress, when she walks, treads on the ground:
And yet, by heaven, I think my love as rare
As any she belied with false compare.""",
    ("ozymandias", "poetry"): """I met a traveller from an antique land,
Who said -- "Two vast and trunkless legs of stone
Stand in the desert. . . . Near them, on the sand,
Half sunk a shattered visage lies, whose frown,
And wrinkled lip, and sneer of cold command,
Tell that its sculptor well those passions read
Which yet survive, stamped on these lifeless things,
The hand that mocked them, and the heart that fed;
And on the pedestal, these words appear:
My name is Ozymandias, King of Kings;
Look on my Works, ye Mighty, and despair!
Nothing beside remains. Round the decay
Of that colossal Wreck, boundless and bare
The lone and level sands stretch far away.\"""",
    ("new-colossus", "poetry"): """Not like the brazen giant of Greek fame,
With conquering limbs astride from land to land;
Here at our sea-washed, sunset gates shall stand
A mighty woman with a torch, whose flame
Is the imprisoned lightning, and her name
Mother of Exiles. From her beacon-hand
Glows world-wide welcome; her mild eyes command
The air-bridged harbor that twin cities frame.
"Keep, ancient lands, your storied pomp!" cries she
With silent lips. "Give me your tired, your poor,
Your huddled masses yearning to breathe free,
The wretched refuse of your teeming shore.
Send these, the homeless, tempest-tost to me,
I lift my lamp beside the golden door!\"""",
    ("psalm-23", "scripture"): """The Lord is my shepherd; I shall not want.
He maketh me to lie down in green pastures: he leadeth me beside the still waters.
He restoreth my soul: he leadeth me in the paths of righteousness for his name's sake.
Yea, though I walk through the valley of the shadow of death, I will fear no evil: for thou art with me; thy rod and thy staff they comfort me.
Thou preparest a table before me in the presence of mine enemies: thou anointest my head with oil; my cup runneth over.
Surely goodness and mercy shall follow me all the days of my life: and I will dwell in the house of the Lord for ever.""",
    ("genesis-1", "scripture"): """In the beginning God created the heaven and the earth.
And the earth was without form, and void; and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters.
And God said, Let there be light: and there was light.
And God saw the light, that it was good: and God divided the light from the darkness.
And God called the light Day, and the darkness he called Night. And the evening and the morning were the first day.""",
    ("hamlet-soliloquy", "poetry"): """To be, or not to be, that is the question:
Whether 'tis nobler in the mind to suffer
The slings and arrows of outrageous fortune,
Or to take arms against a sea of troubles
And by opposing end them. To die -- to sleep,
No more; and by a sleep to say we end
The heart-ache and the thousand natural shocks
That flesh is heir to: 'tis a consummation
Devoutly to be wish'd. To die, to sleep;
To sleep, perchance to dream -- ay, there's the rub:
For in that sleep of death what dreams may come,
When we have shuffled off this mortal coil,
Must give us pause.""",
    ("hello-world", "example"): "helloworld",
    ("tiny", "example"): "hi",
    ("empty", "example"): "",
}


def main():
    out = pathlib.Path(__file__).parent / "corpus"
    out.mkdir(exist_ok=True)
    items = list(TEXTS.items())
    halves = [items[: len(items) // 2], items[len(items) // 2 :]]
    for i, half in enumerate(halves):
        table = pa.table(
            {
                "doc_id": pa.array([k[0] for k, _ in half], pa.string()),
                "source": pa.array([k[1] for k, _ in half], pa.string()),
                "tokens": pa.array([encode(t) for _, t in half], pa.list_(pa.int32())),
            }
        )
        pq.write_table(table, out / f"part-{i}.parquet", row_group_size=4, compression="zstd")
    print(f"wrote {sum(len(h) for h in halves)} documents to {out}")


if __name__ == "__main__":
    main()
