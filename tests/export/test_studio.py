"""Latent Studio: the server side (uploads, static files, studio.json, exports) and the page in headless chromium.

The browser tests need Debian's chromium and chromedriver (`make browser` installs them) and skip
without them. Screenshots of each state go under the test's tmp dir (and, with KERAS_VAE_UPDATE_DOCS=1, one
to docs/studio.png).
"""

import argparse
import http.client
import io
import json
import os
import shutil
import struct
import threading
import zlib

import numpy as np
import pytest
from PIL import Image

from keras_vae.export.attributes import (
    attribute_vectors,
    attributes_document,
    kl_per_dimension,
    read_attributes,
    saved_model_functions,
    write_attributes,
)
from keras_vae.export.layout import latest_version_dir
from keras_vae.export.rest_format import ServingError
from keras_vae.export.studio import (MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS, decode_upload, make_studio_server,
                                     prepare_model)
from keras_vae.images import decode_image

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DOCS_SCREENSHOT = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "studio.png")
WAIT_SECONDS = 30
pytestmark = pytest.mark.timeout(300)


def png_bytes(array, fmt="PNG"):
    return image_bytes(Image.fromarray(array), fmt)


def image_bytes(image, fmt="PNG"):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def png_header(width, height):
    """A PNG file that claims ``width`` x ``height`` 1-bit pixels: a few bytes, the header of a decompression bomb."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def palette_image(colours, index, transparent=None):
    image = Image.new("P", (24, 20), index)
    image.putpalette([value for colour in colours for value in colour])
    if transparent is not None:
        image.info["transparency"] = transparent
    return image


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def studio_base(run_dir, bar_data, tmp_path_factory):
    """A private copy of the tiny trained run, exported by the studio, with attributes of the bar labels."""
    run = shutil.copytree(run_dir, tmp_path_factory.mktemp("studio") / "bars")
    base = prepare_model(str(run))
    version_dir = latest_version_dir(base)
    images, labels = bar_data
    encode, score = saved_model_functions(version_dir)
    doc = attributes_document(encode, score, images[:256], {"vertical bar": labels[:256] == 1}, source="bars")
    write_attributes(version_dir, doc)
    return base


@pytest.fixture(scope="module")
def studio(studio_base):
    server = make_studio_server(studio_base, port=0, max_request_bytes=16 << 20)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.close()
    thread.join(timeout=10)


def request(server, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=WAIT_SECONDS)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


def predict(server, signature, inputs):
    body = json.dumps({"signature_name": signature, "inputs": inputs})
    status, _, data = request(server, "POST", "/v1/models/bars:predict", body)
    assert status == 200, data
    return json.loads(data)["outputs"]


# ------------------------------------------------------------------------------------------ server side
def test_decode_upload_resizes_and_checks():
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, 10:30] = 255  # the centre square survives the crop
    pixels = decode_upload(png_bytes(wide), (16, 16, 1))
    assert pixels.shape == (16, 16, 1) and pixels.dtype == np.float32
    assert pixels.min() >= 0 and pixels.max() <= 1 and pixels.mean() > 0.9
    assert decode_upload(png_bytes(wide, "JPEG"), (8, 8, 3)).shape == (8, 8, 3)
    for data, message in [(b"", "empty"), (b"not an image at all", "not a PNG or JPEG"),
                          (png_bytes(wide)[:60], "damaged"), (png_bytes(wide, "GIF"), "GIF")]:
        with pytest.raises(ServingError, match=message):
            decode_upload(data, (16, 16, 1))


def test_upload_endpoint_answers_errors_and_keeps_serving(studio):
    status, _, data = request(studio, "POST", "/studio/image", png_bytes(np.full((5, 7), 255, np.uint8)))
    assert status == 200 and np.asarray(json.loads(data)["image"]).shape == (16, 16, 1)
    status, _, data = request(studio, "POST", "/studio/image", b"\x89PNG\r\n\x1a\n garbage")
    assert status == 400 and "PNG or JPEG image" in json.loads(data)["error"]
    status, _, data = request(studio, "POST", "/studio/image", b"x" * (MAX_UPLOAD_BYTES + 1))
    assert status == 413 and "limit" in json.loads(data)["error"]
    assert request(studio, "GET", "/v1/models/bars")[0] == 200  # still serving


# Every mode a PNG or JPEG holds, as the 16x16x1 model gets it: (file, expected grey value everywhere, tolerance).
_GREY_16 = np.full((20, 24), 16384, np.uint16)
UPLOAD_MODES = {
    "16-bit grey 0.25": (png_bytes(_GREY_16), 0.25, 1e-3),
    "16-bit grey 0.75": (png_bytes(_GREY_16 * 3), 0.75, 1e-3),
    "8-bit grey": (png_bytes(np.full((20, 24), 51, np.uint8)), 0.2, 1e-3),
    "1-bit white": (image_bytes(Image.new("1", (24, 20), 1)), 1.0, 1e-3),
    "1-bit black": (image_bytes(Image.new("1", (24, 20), 0)), 0.0, 1e-3),
    "palette grey": (image_bytes(palette_image([(0, 0, 0), (255, 255, 255), (102, 102, 102)], 2)), 0.4, 1e-3),
    "palette red": (image_bytes(palette_image([(0, 0, 0), (255, 0, 0)], 1)), 0.299, 2e-3),
    "palette transparent": (image_bytes(palette_image([(0, 0, 0), (255, 0, 0)], 0, transparent=0)), 1.0, 1e-3),
    "LA transparent": (image_bytes(Image.new("LA", (24, 20), (0, 0))), 1.0, 1e-3),
    "LA opaque black": (image_bytes(Image.new("LA", (24, 20), (0, 255))), 0.0, 1e-3),
    "LA half black": (image_bytes(Image.new("LA", (24, 20), (0, 102))), 0.6, 1e-3),
    "RGBA transparent": (image_bytes(Image.new("RGBA", (24, 20), (0, 0, 0, 0))), 1.0, 1e-3),
    "RGBA opaque blue": (image_bytes(Image.new("RGBA", (24, 20), (0, 0, 255, 255))), 0.114, 2e-3),
    "RGB green": (image_bytes(Image.new("RGB", (24, 20), (0, 255, 0))), 0.587, 2e-3),
    "CMYK JPEG white": (image_bytes(Image.new("CMYK", (24, 20), (0, 0, 0, 0)), "JPEG"), 1.0, 0.02),
    "CMYK JPEG black": (image_bytes(Image.new("CMYK", (24, 20), (0, 0, 0, 255)), "JPEG"), 0.0, 0.02),
    "grey JPEG": (image_bytes(Image.new("L", (24, 20), 204), "JPEG"), 0.8, 0.02),
}


@pytest.mark.parametrize("mode", list(UPLOAD_MODES))
def test_upload_of_every_mode_is_scaled_by_its_own_range(studio, mode):
    data, expected, tolerance = UPLOAD_MODES[mode]
    status, _, body = request(studio, "POST", "/studio/image", data)
    assert status == 200, body
    pixels = np.asarray(json.loads(body)["image"])
    assert pixels.shape == (16, 16, 1)
    np.testing.assert_allclose(pixels, expected, atol=tolerance)


def test_16_bit_detail_survives_and_colour_models_get_three_channels():
    ramp = (np.linspace(0, 65535, 32)[None, :] * np.ones((32, 1))).astype(np.uint16)  # left dark, right bright
    pixels = decode_image(png_bytes(ramp), (8, 8, 1))[..., 0]
    assert pixels[:, 0].max() < 0.1 and pixels[:, -1].min() > 0.9 and np.all(np.diff(pixels[0]) > 0)
    rgba = decode_image(image_bytes(Image.new("RGBA", (8, 8), (255, 0, 0, 128))), (4, 4, 3))
    np.testing.assert_allclose(rgba[0, 0], [1.0, 127 / 255, 127 / 255], atol=0.01)  # half red on white
    grey = decode_image(png_bytes(np.full((8, 8), 32768, np.uint16)), (4, 4, 3))
    np.testing.assert_allclose(grey, 0.5, atol=1e-3)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow warns above 89 M pixels
@pytest.mark.parametrize("width, height", [(10_000, 10_000), (20_000, 20_000)])
def test_a_decompression_bomb_is_refused_as_too_large_with_the_limit(studio, width, height):
    data = png_header(width, height)
    assert len(data) < 100
    status, _, body = request(studio, "POST", "/studio/image", data)
    message = json.loads(body)["error"]
    assert status == 400 and "too large" in message and f"the limit is {MAX_UPLOAD_PIXELS} pixels" in message
    assert "not a PNG or JPEG" not in message
    assert request(studio, "GET", "/v1/models/bars")[0] == 200


def test_static_files_only_from_the_package(studio):
    status, content_type, data = request(studio, "GET", "/")
    assert status == 200 and content_type.startswith("text/html") and b"studio/studio.js" in data
    assert request(studio, "GET", "/studio/studio.js")[0] == 200
    for path in ["/studio/../__init__.py", "/studio/%2e%2e/__init__.py", "/../../etc/passwd", "/studio/studio.py"]:
        assert request(studio, "GET", path)[0] == 404, path


def test_studio_document(studio):
    status, _, data = request(studio, "GET", "/studio/studio.json")
    doc = json.loads(data)
    assert status == 200 and doc["model"] == "bars" and doc["condition"]["kind"] == "none"
    assert doc["attributes"][0]["name"] == "vertical bar" and len(doc["attributes"][0]["vector"]) == 4
    assert doc["threshold"] > 0 and len(doc["kl_per_dim"]) == 4


def test_prepare_model_exports_once_inside_the_model_folder(studio_base):
    assert os.path.basename(os.path.dirname(studio_base)) == "studio"
    version_dir = latest_version_dir(studio_base)
    stamp = os.path.getmtime(os.path.join(version_dir, "saved_model.pb"))
    run = os.path.dirname(os.path.dirname(studio_base))
    assert prepare_model(run) == studio_base  # fresh: not exported again
    assert os.path.getmtime(os.path.join(version_dir, "saved_model.pb")) == stamp
    assert prepare_model(studio_base) == studio_base  # an export folder is served as it is
    assert prepare_model(version_dir) == os.path.abspath(studio_base)


def test_attribute_math_and_files(tmp_path):
    codes = np.array([[1.0, 0.0], [3.0, 2.0], [0.0, 0.0]])
    vectors = attribute_vectors(codes, {"first two": np.array([True, True, False]), "all": np.ones(3, bool)})
    assert vectors == [{"name": "first two", "vector": [2.0, 1.0], "count": 2}]
    assert kl_per_dimension(np.zeros((2, 3)), np.ones((2, 3))) == [0.0, 0.0, 0.0]
    assert read_attributes(tmp_path) is None
    write_attributes(tmp_path, {"attributes": vectors})
    assert read_attributes(tmp_path)["attributes"] == vectors


def test_cli_registers_studio_on_loopback():
    from keras_vae.cli.studio import add_command

    parser = argparse.ArgumentParser()
    add_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["studio", "runs/x"])
    assert (args.command, args.model, args.host, args.port) == ("studio", "runs/x", "127.0.0.1", 8600)
    assert parser.parse_args(["studio", "m", "--port", "9", "--host", "0.0.0.0"]).host == "0.0.0.0"


def test_attributes_of_an_unknown_dataset_are_skipped(studio_base):
    from keras_vae.cli.studio import compute_attributes

    notes = []
    assert compute_attributes(latest_version_dir(studio_base), log=notes.append) is None
    assert "'bars' is not a known dataset" in notes[0]


def test_attribute_masks_for_classes_and_sprite_factors():
    from keras_vae.cli.studio import attribute_masks
    from keras_vae.training.data import dataset_info

    masks = attribute_masks(np.array([0, 3, 3]), dataset_info("mnist"))
    assert len(masks) == 10 and masks["class 3"].tolist() == [False, True, True]
    factors = np.array([[0, 5, 0, 31, 0], [2, 0, 39, 0, 31]])
    masks = attribute_masks(factors, dataset_info("sprites"))
    assert masks["shape heart"].tolist() == [False, True] and masks["scale"].tolist() == [True, False]


# ------------------------------------------------------------------------------------------ browser
@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("chromium/chromedriver not installed (run `make browser`)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1700", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    driver.set_script_timeout(WAIT_SECONDS)
    yield driver
    driver.quit()  # ends chromium and chromedriver


@pytest.fixture
def page(browser, studio):
    browser.get(f"http://127.0.0.1:{studio.server_port}/")
    wait_for(browser, "return document.body.dataset.ready")
    assert browser.execute_script("return document.body.dataset.ready") == "yes", error_text(browser)
    return browser


def wait_for(driver, script):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.05).until(lambda d: d.execute_script(script))


def idle(driver):
    wait_for(driver, "return studio.idle()")


def error_text(driver):
    return driver.execute_script("const e = document.getElementById('error'); return e.hidden ? '' : e.textContent")


def pixels(driver, selector, index=0):
    return np.asarray(driver.execute_script("return studio.pixels(arguments[0], arguments[1])", selector, index))


def pick(driver, target, grid_index):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, "target")).select_by_value(target)
    driver.find_elements(By.CSS_SELECTOR, "#grid canvas")[grid_index].click()
    idle(driver)


def move_slider(driver, css, key):
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, css).send_keys(key)  # a real keyboard move fires `input`
    idle(driver)


def test_slider_redecodes_live(page, tmp_path):
    from selenium.webdriver.common.keys import Keys

    assert len(page.execute_script("return document.querySelectorAll('#grid canvas')")) == 16
    pick(page, "explore", 0)
    before = pixels(page, "#decoded")
    assert before.size == 16 * 16 * 4
    move_slider(page, "#sliders input", Keys.END)
    after = pixels(page, "#decoded")
    assert np.abs(after - before).max() > 0, "moving a latent slider must change the decoded image"
    move_slider(page, "#attributes input", Keys.END)
    assert np.abs(pixels(page, "#decoded") - after).max() > 0, "the attribute slider must change the image"
    assert error_text(page) == ""
    page.save_screenshot(str(tmp_path / "slider.png"))


def test_interpolation_ends_match_reconstructions(page, studio, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    pick(page, "a", 2)
    pick(page, "b", 5)
    Select(page.find_element(By.ID, "interp-method")).select_by_value("spherical")
    idle(page)
    count = page.execute_script("return document.querySelectorAll('#strip canvas').length")
    assert count == 8
    images = page.execute_script("return [studio.state.grid[2].image, studio.state.grid[5].image]")
    recon = np.asarray(predict(studio, "reconstruct", {"images": images}))
    expected = np.round(255 * np.clip(recon[..., 0], 0, 1))
    for end, index in [(0, 0), (1, count - 1)]:
        strip_end = pixels(page, "#strip canvas", index).reshape(16, 16, 4)[..., 0]
        assert np.abs(strip_end - expected[end]).max() <= 1, f"strip end {index} is not the reconstruction"
    page.save_screenshot(str(tmp_path / "interpolation.png"))


def test_malformed_upload_shows_the_server_error_and_page_keeps_working(page, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    pick(page, "explore", 1)
    page.find_element(By.ID, "upload").send_keys(str(bad))
    idle(page)
    message = error_text(page)
    assert "broken.png" in message and "PNG or JPEG image" in message, message
    page.save_screenshot(str(tmp_path / "bad_upload.png"))
    before = pixels(page, "#decoded")
    move_slider(page, "#sliders input", Keys.HOME)
    assert np.abs(pixels(page, "#decoded") - before).max() > 0, "the page must keep working after a bad upload"
    good = tmp_path / "bar.png"
    bar = np.zeros((32, 32), np.uint8)
    bar[:, 12:20] = 255
    good.write_bytes(png_bytes(bar))
    page.find_element(By.ID, "upload").send_keys(str(good))
    idle(page)
    assert error_text(page) == ""
    page.save_screenshot(str(tmp_path / "good_upload.png"))


def test_blend_score_and_download(page, tmp_path):
    from selenium.webdriver.common.by import By

    pick(page, "explore", 3)
    pick(page, "a", 0)
    pick(page, "b", 1)
    pick(page, "blend0", 0)
    pick(page, "blend1", 1)
    assert pixels(page, "#blend-result").size == 16 * 16 * 4
    pick(page, "score", 4)
    assert float(page.find_element(By.ID, "score").text) > 0
    assert page.find_element(By.ID, "verdict").text.startswith(("Normal", "Anomalous"))
    snapshot = page.execute_script("return studio.snapshot()")
    assert snapshot.startswith("data:image/png;base64,")
    page.save_screenshot(str(tmp_path / "all_panels.png"))
    if os.environ.get("KERAS_VAE_UPDATE_DOCS"):  # refreshes README's picture on request; tests write only tmp dirs
        os.makedirs(os.path.dirname(DOCS_SCREENSHOT), exist_ok=True)
        page.save_screenshot(DOCS_SCREENSHOT)
    assert error_text(page) == ""


@pytest.fixture(scope="module")
def conditional_studio(bar_data, fit_briefly, tmp_path_factory):
    """The studio over a briefly trained class-conditional model (two labels: horizontal, vertical bar)."""
    import keras_vae
    from keras_vae.export.saved_model import export_model

    model = keras_vae.build_vae((16, 16, 1), 4, architecture="mlp", hidden_units=(32,), variant="cvae",
                                num_classes=2, seed=0)
    fit_briefly(model, *bar_data, epochs=3)
    result = export_model(model, base_dir=str(tmp_path_factory.mktemp("cstudio")), name="bars", with_encoder=True)
    server = make_studio_server(result.model_dir, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.close()
    thread.join(timeout=10)


def test_conditional_model_decodes_the_code_under_every_label(browser, conditional_studio, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"http://127.0.0.1:{conditional_studio.server_port}/")
    wait_for(browser, "return document.body.dataset.ready")
    assert browser.execute_script("return document.body.dataset.ready") == "yes", error_text(browser)
    Select(browser.find_element(By.ID, "label")).select_by_value("1")
    idle(browser)
    pick(browser, "explore", 0)
    row = [pixels(browser, "#labels-row canvas", i) for i in range(2)]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#labels-row canvas")) == 2
    assert np.abs(row[0] - row[1]).max() > 0, "the two labels must decode the code differently"
    assert np.array_equal(row[1], pixels(browser, "#decoded")), "the chosen label's decode is the explored one"
    assert error_text(browser) == ""
    browser.save_screenshot(str(tmp_path / "conditional.png"))
