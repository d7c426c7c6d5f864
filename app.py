"""GeoGAN browser demo: exemplar-based facial attribute transfer (Gradio, Hugging Face Space).

Run ``python app.py [--model ID_OR_DIR] [--host HOST] [--port PORT]``; the same file runs
unchanged as a Space. Without ``--model`` (or ``GEOGAN_MODEL``) the demo uses the geometry
prior, which needs no download. The model and the landmark predictor load once at start-up.

The page calls one named endpoint, ``/transfer``: (source image, exemplar image, attribute,
strength[, source face, exemplar face, hair colour]) -> (result image, before/after,
inside-the-model pictures..., model and timings). ``gradio_client`` may call it with the
first four arguments; face indices are checked against the faces found on the server.
Inputs reach the handlers unprocessed by Gradio (``preprocess=False``): photos as the bytes
of the uploaded file or ``data:`` URL, size-checked before anything is decoded, and every
other value is checked by the pipeline, so each error a user can cause gets its message.
This file holds the UI only; every image operation lives in :mod:`geogan_hf.pipeline`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

# Analytics stay off unless the environment asks for them (set before gradio is imported).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
import numpy as np
from gradio.utils import get_upload_folder, is_in_or_equal
from PIL import Image, ImageDraw

from geogan_hf.errors import GeoGANError, InvalidImageError
from geogan_hf.imageio import ImageInput, load_image, read_upload
from geogan_hf.model import PAPER_URL, code_url
from geogan_hf.pipeline import MODE_UNTRAINED, ProgressCallback, TransferPipeline, TransferResult
from geogan_hf.regions import ATTRIBUTE_SPECS, DEFAULT_HAIR_COLOUR, EXPERIMENTAL_ATTRIBUTES
from geogan_hf.runtime import configure_cpu_runtime
from geogan_hf.samples import Sample, available_samples, load_sample

try:  # Hugging Face ZeroGPU: a GPU is attached only while a decorated call runs.
    import spaces
except ImportError:
    spaces = None

logger = logging.getLogger("geogan_hf.app")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
MAX_UPLOAD_BYTES = 10 * 1024**2  # per photo, uploads and data: URLs alike
QUEUE_MAX_SIZE = 64
CONCURRENCY_LIMIT = 1  # CPU-bound model calls: more at once only slows each one down
CACHE_MAX_AGE = 600  # seconds an upload or a result stays in Gradio's cache
MAX_EXAMPLES = 6
EXAMPLES_PER_TABLE = 3  # tables side by side: every example fits on a laptop's first screen
# The demo's examples (source, exemplar, attribute), best first: every pair of the sample
# faces was run and looked at (benchmarks/app_examples.py, scores in
# benchmarks/results/app_examples.md). Pairing each exemplar with the next source had put
# einstein's grey mustache on grey skin first (a faint smudge), then takeo's rimless glasses
# (black strokes) and the breakingbad goatee (its lit chin, now found not to show one).
EXAMPLES: tuple[tuple[str, str, str], ...] = (
    ("astronaut", "breakingbad", "Mustache"),
    ("einstein", "breakingbad", "Eyeglasses"),
    ("grace_hopper", "astronaut", "Smiling"),
    ("lenna", "breakingbad", "Mustache"),
    ("grace_hopper", "breakingbad", "Mustache"),
)
INPUT_SOURCES = ["upload", "webcam", "clipboard"]
INPUT_HEIGHT = 200
OUTPUT_HEIGHT = 480
PREVIEW_SIZE = 1024  # long side of the before/after pictures (shown 480 px high)
DETAIL_SIZE = 512  # long side of the "inside the model" pictures (shown about 240 px wide)
JPEG_QUALITY = 90  # previews (before/after, crops) are JPEG: fast to encode; the result is PNG
OUTPUT_FOLDER = "geogan_outputs"  # in Gradio's cache: served from there, never copied
EMPTY_FOLDER_AGE = 60.0  # seconds; output folders emptied by Gradio's cache cleaning go then
BROWSER_FORMATS = {".png", ".jpg", ".jpeg", ".webp", ".gif"}

CSS = """
#model-panel table { font-size: 0.9em; }
#header h1 { margin-bottom: 0.2em; }
#header p { margin: 0.2em 0; }
.examples-table .container.table { width: 56px; height: 56px; }
.examples-table td { padding: 4px 8px; }
"""
RESPONSIBLE_USE = (
    "**Responsible use.** This edits photos of real people. Do not use it to deceive, harass "
    "or impersonate, or on someone's photo without their consent. The landmark detector and "
    "any trained model inherit the biases of their training data; check results on the people "
    "you apply it to. Uploaded photos and results are deleted from this server after {age}."
)

OUTPUTS_DOC = (
    "result (full resolution), before/after, source crop with landmarks, exemplar crop "
    "with landmarks, warped exemplar, mask, flow, model and timings (markdown)"
)
FACE_DOC = (
    "source_face and exemplar_face take any face index (0 = the largest face; the page lists "
    "only the faces it found), checked against the faces found in each photo; hair_colour is "
    "'auto' (a fringe in the source's hair colours, a mustache or goatee in the exemplar's), "
    "'own' (a mustache or goatee in the colours of the source's own beard or brows too) or "
    "'exemplar'"
)
HAIR_COLOUR_CHOICES = [("Auto", "auto"), ("Yours", "own"), ("The exemplar's", "exemplar")]
# the hair colour choice is shown for the attributes it changes
HAIR_COLOUR_ATTRIBUTES = frozenset(
    name for name, spec in ATTRIBUTE_SPECS.items() if spec.own_colour is not None
)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options; each defaults to its environment variable."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default=os.environ.get("GEOGAN_MODEL") or None,
        help="Hub id or local folder of a GeoGAN checkpoint (env GEOGAN_MODEL); "
        "default: the geometry prior, no download",
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", DEFAULT_HOST),
        help=f"interface to listen on (env GRADIO_SERVER_NAME, default {DEFAULT_HOST})",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("GRADIO_SERVER_PORT", DEFAULT_PORT)),
        help=f"port (env GRADIO_SERVER_PORT, default {DEFAULT_PORT})",
    )
    for flag, env, default, what in (
        ("--concurrency", "GEOGAN_CONCURRENCY", CONCURRENCY_LIMIT, "transfers run at once"),
        ("--cache-age", "GEOGAN_CACHE_AGE", CACHE_MAX_AGE, "seconds uploads and results are kept"),
    ):
        parser.add_argument(
            flag,
            type=_positive_int,
            default=os.environ.get(env, default),
            help=f"{what} (env {env}, default {default})",
        )
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def load_pipeline(model: str | None = None) -> TransferPipeline:
    """Loads the transfer pipeline once: a checkpoint (Hub id or folder) or the geometry prior."""
    pipe = TransferPipeline(model=model)
    pipe.detect(Image.new("RGB", (64, 64)))  # loads the landmark predictor now, not at 1st visit
    logger.info("loaded %s", pipe.describe())
    return pipe


def header(pipe: TransferPipeline) -> str:
    """Title, what the page does and links to the paper, the code and the model."""
    links = [f"[Paper]({PAPER_URL})"]
    if space := os.environ.get("SPACE_ID"):  # set on Hugging Face Spaces: its own files
        links.append(f"[Code](https://huggingface.co/spaces/{space}/tree/main)")
    elif code := code_url():
        links.append(f"[Code]({code})")
    model = pipe.model_id
    if model and not Path(model).expanduser().exists():
        links.append(f"Model: [{model}](https://huggingface.co/{model})")
    else:
        links.append(f"Model: {pipe.mode}" + (" (no learned weights)" if not model else ""))
    experimental = any(a in EXPERIMENTAL_ATTRIBUTES for a in pipe.attributes)
    return (
        "# GeoGAN: facial attribute transfer\n"
        "Put the **exemplar**'s mustache, goatee or glasses on the **source** face, bent to "
        "its geometry, at the photo's full resolution."
        + (" Attributes marked experimental are often not believable yet." if experimental else "")
        + "\n\n"
        + " · ".join(links)
    )


def draw_landmarks(image: Image.Image, landmarks: np.ndarray) -> Image.Image:
    """A copy of ``image`` with its 68 (x, y) landmarks drawn as green dots (display only)."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    r = max(1.0, out.width / 160)
    for x, y in landmarks:
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(0, 255, 120), outline=(0, 0, 0))
    return out


def attribute_label(name: str) -> str:
    """The attribute as the dropdown shows it: ``"Bangs"``, ``"Sideburns (experimental)"``."""
    label = name.replace("_", " ")
    return f"{label} (experimental)" if name in EXPERIMENTAL_ATTRIBUTES else label


def model_panel(
    pipe: TransferPipeline,
    timings: dict[str, float] | None = None,
    exemplar_mirrored: bool = False,
) -> str:
    """Markdown naming the loaded model and, after a run, how long each stage took and
    whether the exemplar crop was mirrored (:attr:`TransferResult.exemplar_mirrored`)."""
    lines = [f"**Model:** {pipe.describe()}", ""]
    if exemplar_mirrored:
        lines += [
            "The exemplar's face is turned the other way from the source's: its crop was "
            "mirrored, so that the near side of the glasses lands on the near eye.",
            "",
        ]
    if pipe.mode == MODE_UNTRAINED:
        lines = [
            "⚠️ **This model was never trained: its results are noise.** "
            "Load trained weights with `--model`, or run without it for the geometry prior.",
            "",
            *lines,
        ]
    if timings:
        lines += ["| stage | time |", "|---|---:|"]
        lines += [f"| {stage} | {seconds * 1000:.0f} ms |" for stage, seconds in timings.items()]
        lines.append(f"| **total** | **{sum(timings.values()) * 1000:.0f} ms** |")
    return "\n".join(lines)


def face_selector(pipe: TransferPipeline, image: ImageInput | None) -> dict[str, Any]:
    """Dropdown update listing the faces of ``image``; shown only when there are several."""
    faces: list[Any] = []
    if image is not None:
        try:
            faces = pipe.detect(load_image(image, max_pixels=pipe.max_pixels))
        except GeoGANError:
            faces = []  # the Transfer button reports the problem with the image
    choices = [(f"Face {i + 1}" + (" (largest)" if i == 0 else ""), i) for i in range(len(faces))]
    return gr.update(choices=choices or [("Face 1", 0)], value=0, visible=len(faces) > 1)


def output_folder() -> Path:
    """A new folder in Gradio's cache for one request's pictures.

    Files written there are served as they are (not copied) and deleted by Gradio's cache
    cleaning (``delete_cache``); folders it left empty are removed here. The handler returns
    file paths rather than PIL images: Gradio re-encodes a PIL image and rewrites the cached
    file in place, truncating it for a client that is downloading the same picture from an
    earlier request (seen under concurrent identical requests).
    """
    root = Path(get_upload_folder()) / OUTPUT_FOLDER
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        with contextlib.suppress(OSError):  # not empty, or removed by a concurrent request
            if time.time() - old.stat().st_mtime > EMPTY_FOLDER_AGE:
                old.rmdir()
    return Path(tempfile.mkdtemp(dir=root))


def save_output(image: Image.Image, path: Path, max_side: int | None = None) -> str:
    """Writes ``image`` (format from the suffix), at most ``max_side`` px long; returns the path."""
    if max_side is not None and max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    options = {"quality": JPEG_QUALITY} if path.suffix == ".jpg" else {}
    image.save(path, **options)
    return str(path)


def uploaded(payload: Any, role: str) -> bytes | None:
    """The encoded bytes of a photo as the page or the API sends it, undecoded.

    ``payload`` is Gradio's file payload: a file in Gradio's upload folder (anything else is
    refused) or a ``data:`` URL; both are refused above :data:`MAX_UPLOAD_BYTES`.

    Raises:
        InvalidImageError: not an uploaded file.
        ImageTooLargeError: above the size limit.
    """
    if payload is None:
        return None
    if not isinstance(payload, dict):
        raise InvalidImageError(f"{role} image must be an uploaded file")
    upload = payload.get("url") or ""
    if not upload.startswith("data:"):
        upload = payload.get("path") or ""
        if not upload or not is_in_or_equal(upload, get_upload_folder()):
            raise InvalidImageError(f"{role} image was not uploaded to this server")
    return read_upload(upload, max_bytes=MAX_UPLOAD_BYTES, role=role)


def user_error(err: GeoGANError) -> gr.Error:
    """A :class:`GeoGANError` as the message the page and the API show."""
    return gr.Error(_sentence(str(err)), print_exception=False)


def transfer(
    pipe: TransferPipeline,
    source: ImageInput | None,
    exemplar: ImageInput | None,
    attribute: Any,
    strength: Any = 1.0,
    source_face: Any = 0,
    exemplar_face: Any = 0,
    hair_colour: Any = DEFAULT_HAIR_COLOUR,
    progress: ProgressCallback | None = None,
) -> tuple[Any, ...]:
    """Runs one transfer and returns the values of the page's output components.

    Values come as the client sent them; the pipeline checks their types and ranges.

    Raises:
        gr.Error: a missing input or any :class:`GeoGANError`, with its one-line message.
    """
    if source is None:
        raise gr.Error("Upload a source face image.", print_exception=False)
    if exemplar is None:
        raise gr.Error(
            "Upload an exemplar face image that has the attribute.", print_exception=False
        )
    try:
        result: TransferResult = pipe(
            source,
            exemplar,
            attribute=attribute,
            strength=strength,
            source_face=source_face,
            exemplar_face=exemplar_face,
            hair_colour=hair_colour,
            progress=progress,
        )
    except GeoGANError as err:
        raise user_error(err) from err
    # the transfer's own notes (an experimental attribute: shown, the result still comes
    # back), not warnings caught around it: those are process-wide, and another thread's (a
    # pandas deprecation while the server formatted another output) reached users as toasts
    for note in result.notes:
        gr.Warning(_sentence(note))
    folder = output_folder()
    return (
        save_output(result.image, folder / "result.png"),
        (
            save_output(result.source, folder / "before.jpg", PREVIEW_SIZE),
            save_output(result.image, folder / "after.jpg", PREVIEW_SIZE),
        ),
        save_output(
            draw_landmarks(result.source_crop, result.source_landmarks),
            folder / "source_crop.jpg",
            DETAIL_SIZE,
        ),
        save_output(
            draw_landmarks(result.exemplar_crop, result.exemplar_landmarks),
            folder / "exemplar_crop.jpg",
            DETAIL_SIZE,
        ),
        save_output(result.warped, folder / "warped.jpg", DETAIL_SIZE),
        save_output(result.mask, folder / "mask.png", DETAIL_SIZE),
        save_output(result.flow_rgb, folder / "flow.jpg", DETAIL_SIZE),
        model_panel(pipe, result.timings, result.exemplar_mirrored),
    )


def _duration(seconds: int) -> str:
    return f"{seconds // 60} minutes" if seconds >= 120 else f"{seconds} seconds"


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:]


def example_value(sample: Sample) -> str | Image.Image:
    """A sample as a Gradio example: its file when browsers show that format, else the image.

    Gradio copies example files into its own cache when the page is built, so package files
    are never served from where they live; PIL images would be PNG-encoded there (slower).
    """
    return str(sample.path) if sample.path.suffix.lower() in BROWSER_FORMATS else sample.image


def example_rows(attributes: Sequence[str], limit: int = MAX_EXAMPLES) -> list[list[Any]]:
    """Offline example pairs from the installed sample faces: [source, exemplar, attribute].

    The pairs of :data:`EXAMPLES` for the model's ``attributes``; for a model none of them
    fits (a trained model's other attributes), each exemplar wearing one of its attributes
    is paired with a source face that does not wear it, sources rotating so the examples
    show different faces.
    """
    installed = available_samples()
    rows: list[list[Any]] = [
        [example_value(load_sample(source)), example_value(load_sample(exemplar)), attribute]
        for source, exemplar, attribute in EXAMPLES
        if attribute in attributes and {source, exemplar} <= set(installed)
    ]
    samples = [load_sample(name) for name in installed]
    turn = 0
    for attribute in attributes if not rows else ():
        for exemplar in samples:
            sources = [s for s in samples if s is not exemplar and attribute not in s.attributes]
            if attribute in exemplar.attributes and sources:
                source = sources[turn % len(sources)]
                turn += 1
                rows.append([example_value(source), example_value(exemplar), attribute])
    return rows[:limit]


def photo_input(label: str, name: str, face_label: str) -> tuple[gr.Image, gr.Dropdown]:
    """A photo upload column and its face selector (shown only for photos with several faces)."""
    with gr.Column(min_width=140):  # two photos side by side, even on a phone
        image = gr.Image(
            label=label,
            type="filepath",
            image_mode=None,
            format="png",
            sources=INPUT_SOURCES,
            height=INPUT_HEIGHT,
            elem_id=f"{name}-image",
        )
        face = gr.Dropdown(
            [("Face 1", 0)], value=0, label=face_label, visible=False, elem_id=f"{name}-face"
        )
    return image, face


def build_demo(
    pipe: TransferPipeline,
    concurrency_limit: int = CONCURRENCY_LIMIT,
    cache_age: int = CACHE_MAX_AGE,
) -> gr.Blocks:
    """The page: header and links; inputs, Transfer button and examples beside the results;
    an "inside the model" accordion; the responsible-use note.

    Gradio deletes uploads and results older than ``cache_age`` seconds.
    """

    def run_transfer(
        source,
        exemplar,
        attribute,
        strength,
        source_face,
        exemplar_face,
        hair_colour=DEFAULT_HAIR_COLOUR,
        progress=gr.Progress(),
    ):
        """Transfers the attribute from the exemplar face onto the source face."""
        try:
            photos = uploaded(source, "source"), uploaded(exemplar, "exemplar")
        except GeoGANError as err:
            raise user_error(err) from err
        return transfer(
            pipe, *photos, attribute, strength, source_face, exemplar_face, hair_colour,
            progress=progress,
        )  # fmt: skip

    if spaces is not None:
        run_transfer = spaces.GPU(run_transfer)

    def select_face(image):
        try:
            photo = uploaded(image, "photo")
        except GeoGANError:
            photo = None  # the Transfer button reports the problem with the image
        return face_selector(pipe, photo)

    attributes = list(pipe.attributes)
    model_events = {
        "concurrency_limit": concurrency_limit,
        "concurrency_id": "model",
        "preprocess": False,  # see the module docstring
    }
    delete_cache = (max(1, cache_age // 4), cache_age)
    with gr.Blocks(title="GeoGAN attribute transfer", delete_cache=delete_cache) as demo:
        gr.Markdown(header(pipe), elem_id="header")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=300):
                with gr.Row():
                    source, source_face = photo_input("Source", "source", "Face to edit")
                    exemplar, exemplar_face = photo_input(
                        "Exemplar", "exemplar", "Face to copy from"
                    )
                with gr.Row():
                    attribute = gr.Dropdown(
                        [(attribute_label(name), name) for name in attributes],
                        value=attributes[0],
                        label="Attribute",
                        min_width=220,  # on a phone: above the slider, not cut short
                        elem_id="attribute",
                    )
                    strength = gr.Slider(
                        0.0, 1.0, value=1.0, step=0.05, label="Strength", elem_id="strength"
                    )
                    hair_colour = gr.Dropdown(
                        HAIR_COLOUR_CHOICES,
                        value=DEFAULT_HAIR_COLOUR,
                        label="Hair colour",
                        min_width=160,
                        visible=attributes[0] in HAIR_COLOUR_ATTRIBUTES,
                        elem_id="hair-colour",
                    )
                button = gr.Button("Transfer", variant="primary", elem_id="transfer-button")
                rows = example_rows(attributes)
                with gr.Row():
                    for start in range(0, len(rows), EXAMPLES_PER_TABLE):
                        with gr.Column(min_width=280, elem_classes="examples-table"):
                            gr.Examples(
                                rows[start : start + EXAMPLES_PER_TABLE],
                                inputs=[source, exemplar, attribute],
                                cache_examples=False,
                                label="Examples: click one, then Transfer"
                                if start == 0
                                else "More examples",
                                elem_id="examples" if start == 0 else f"examples-{start}",
                            )
            with gr.Column(scale=2, min_width=300):
                result = gr.Image(
                    label="Result (full resolution)",
                    type="filepath",
                    interactive=False,
                    buttons=["download", "share", "fullscreen"],
                    height=OUTPUT_HEIGHT,
                    elem_id="result-image",
                )
                before_after = gr.ImageSlider(
                    label="Before / after",
                    type="filepath",
                    interactive=False,
                    max_height=OUTPUT_HEIGHT,
                    elem_id="before-after",
                )
                panel = gr.Markdown(
                    model_panel(pipe), label="Model and timings", elem_id="model-panel"
                )
        with gr.Accordion("Inside the model", open=False, elem_id="inside"), gr.Row():
            inside = [
                gr.Image(label=label, type="filepath", interactive=False)
                for label in (
                    "Source crop + landmarks",
                    "Exemplar crop + landmarks",
                    "Warped exemplar",
                    "Mask",
                    "Flow",
                )
            ]
        gr.Markdown(RESPONSIBLE_USE.format(age=_duration(cache_age)), elem_id="responsible-use")

        for image, selector in ((source, source_face), (exemplar, exemplar_face)):
            image.change(select_face, image, selector, api_visibility="private", **model_events)
        attribute.change(
            lambda name: gr.update(visible=name in HAIR_COLOUR_ATTRIBUTES),
            attribute,
            hair_colour,
            api_visibility="private",
            queue=False,
        )
        button.click(
            run_transfer,
            inputs=[source, exemplar, attribute, strength, source_face, exemplar_face, hair_colour],
            outputs=[result, before_after, *inside, panel],
            api_name="transfer",
            api_description=f"Attribute transfer; {FACE_DOC}. Returns: {OUTPUTS_DOC}.",
            show_progress_on=[result, before_after],
            **model_events,
        )
    return demo


def launch(
    demo: gr.Blocks, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, **kwargs: Any
) -> tuple[Any, str, str]:
    """Queues and serves the demo with the app's limits (no share link, no extra file paths)."""
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=CONCURRENCY_LIMIT)
    return demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        max_file_size=MAX_UPLOAD_BYTES,
        allowed_paths=None,
        footer_links=["api", "gradio", "settings"],
        css=CSS,
        **kwargs,
    )


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class Server(NamedTuple):
    """A running ``python app.py``: its URL and its process."""

    url: str
    process: subprocess.Popen


@contextlib.contextmanager
def serve_subprocess(
    args: Sequence[str] = (),
    host: str = DEFAULT_HOST,
    timeout: float = 180.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """Runs ``python app.py`` on a free port in a subprocess; yields it, stops it after.

    Used by the tests and the load benchmark; ``env`` is added to this process's environment;
    the server's output goes to this process's stderr.
    """
    port = free_port(host)
    command = [sys.executable, str(Path(__file__).resolve()), "--host", host, "--port", str(port)]
    process = subprocess.Popen(
        [*command, *args],
        cwd=Path(__file__).resolve().parent,
        stdout=sys.stderr,
        env={**os.environ, **(env or {})},
    )
    url = f"http://{host}:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited with code {process.returncode} before serving")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"app.py did not answer on {url} in {timeout:.0f} s"
                    ) from None
                time.sleep(0.5)
        yield Server(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python app.py``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_cpu_runtime()
    try:
        pipe = load_pipeline(args.model)
    except GeoGANError as err:  # e.g. a corrupt checkpoint: one line, no traceback
        parser.exit(2, f"error: {err}\n")
    demo = build_demo(pipe, concurrency_limit=args.concurrency, cache_age=args.cache_age)
    launch(demo, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
