"""Named defaults that several modules share. No imports: the command line reads these for its --help without
loading numpy, SQLAlchemy or ONNX Runtime.

Layer: a leaf (names and rules; no dogcat imports but other leaves) (docs/architecture.md).
"""

DEFAULT_DB = "dogcat.db"  # --db when none is given: a SQLite file in the current folder
DEFAULT_BATCH = 32  # photos per model call batch and per committed transaction in `dogcat catalog`
DEFAULT_TOP_K = 3  # breeds listed per photo
# How long a command that writes a SQLite catalog waits for another one writing it (a catalog run's batch, a big
# `correct --from`) before it gives up, saying after the first seconds that it waits (dogcat.db.writing).
WRITE_WAIT_S = 600.0

# JPEG qualities of the pictures dogcat makes from the photos (never of the photos themselves).
THUMBNAIL_QUALITY = 75  # the report's thumbnails: small, many on one page
PREVIEW_QUALITY = 80  # previews.preview's default
ASM3_IMAGE_QUALITY = 85  # ASM3's ANIMALIMAGE, first try: the animal's picture in the shelter's system

# PostgreSQL advisory lock ids (pg_advisory_xact_lock): one per job that must not run twice at once.
LOCK_SCHEMA = 2024061101  # creating or upgrading the schema
LOCK_GROUPING = 2024061102  # grouping files into animals

# `dogcat train quantize` (dogcat.train.quantize.quantize takes the same defaults): int8 calibration.
QUANTIZE_METHODS = ("percentile", "minmax", "entropy")  # how activation ranges are calibrated
QUANTIZE_METHOD = "percentile"
QUANTIZE_KEEP_FP32 = "add,stem"  # parts left in fp32 besides the head: add, depthwise, stem (comma-separated)
QUANTIZE_PARTS = ("add", "depthwise", "stem")
QUANTIZE_PER_BREED = 1  # calibration photos per breed, from the model's training split
# Weights in 7 bits (-64..63): ONNX Runtime's AVX2 int8 kernel adds pairs of uint8 x int8 products in 16 bits,
# which saturates with 8-bit weights where VNNI and AMX add exactly; with 7 it cannot (issue 32).
QUANTIZE_REDUCE_RANGE = True
QUANTIZE_HISTOGRAM_PHOTOS = 40  # at most this many for percentile/entropy (each holds ~150 MB of activations)
