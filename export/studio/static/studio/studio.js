// Latent Studio. Every model computation is a TF Serving REST `:predict` call (signatures sample,
// serving_default, encode, reconstruct, score), so the page also runs against a real TF Serving:
// open it with ?api=http://HOST:8501&model=NAME (the API needs CORS; see docs/studio.md).
// studio/studio.json (served by `keras-vae studio`) adds attributes, the score threshold and the
// upload endpoint; without it the page still samples, decodes, interpolates, blends and scores.
"use strict";

const studio = (() => {
  const GRID_SIZE = 16;
  const MAX_SLIDERS = 16;
  const SLIDER_RANGE = 3;
  const IMAGE_TYPES = ["image/png", "image/jpeg"];
  const params = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);
  const state = {
    api: (params.get("api") || "").replace(/\/+$/, ""), model: "", extras: {}, signatures: {},
    latentDim: 0, shape: null, labelKind: "none", labelSize: 0,
    slots: {}, baseCode: null, code: null, strengths: [], busy: 0, ready: false,
  };

  // ---------------------------------------------------------------- messages
  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = false;
  }
  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }
  function setStatus(text) {
    $("status").textContent = text;
  }

  // Runs a user action: errors go to the error line, and `busy` tells tests when the page is idle.
  async function run(action, keepError = false) {
    state.busy++;
    if (!keepError) clearError();
    try {
      await action();
    } catch (err) {
      showError(err.message || String(err));
    } finally {
      state.busy--;
    }
  }

  // ---------------------------------------------------------------- REST API
  async function fetchJson(url, options) {
    const response = await fetch(url, options);
    const body = await response.json().catch(() => ({}));
    if (!response.ok || body.error) throw new Error(body.error || `HTTP ${response.status} from ${url}`);
    return body;
  }

  // A columnar :predict request. The body goes as text/plain, a "simple" CORS request: a real
  // TF Serving behind a proxy then only needs Access-Control-Allow-Origin, no preflight answers.
  async function predict(signature, inputs) {
    const url = `${state.api}/v1/models/${encodeURIComponent(state.model)}:predict`;
    const body = await fetchJson(url, { method: "POST", body: JSON.stringify({ signature_name: signature, inputs }) });
    return body.outputs;
  }

  // TF Serving drops the output name when a signature has a single output.
  function output(outputs, name) {
    return outputs && !Array.isArray(outputs) && name in outputs ? outputs[name] : outputs;
  }

  function parseSignatures(metadata) {
    const defs = metadata.metadata.signature_def.signature_def;
    const tensors = (map) => Object.fromEntries(Object.entries(map || {}).map(([key, t]) => [
      key, { dtype: t.dtype, shape: ((t.tensor_shape || {}).dim || []).map((d) => Number(d.size)) },
    ]));
    return Object.fromEntries(Object.entries(defs).map(([name, def]) => [
      name, { inputs: tensors(def.inputs), outputs: tensors(def.outputs) },
    ]));
  }

  function has(signature) {
    return signature in state.signatures;
  }

  // The label inputs of a request for `count` codes (conditional models only).
  function labelInputs(count, label = Number($("label").value || 0)) {
    if (state.labelKind === "class") return { label: Array(count).fill(label) };
    if (state.labelKind === "vector") return { label: Array(count).fill(Array(state.labelSize).fill(0)) };
    return {};
  }

  async function decode(codes, labels) {
    const inputs = { z: codes, ...(labels ? { label: labels } : labelInputs(codes.length)) };
    return output(await predict("serving_default", inputs), "images");
  }

  async function encodeItem(item) {
    if (!has("encode")) throw new Error("This export has no encode signature (export it with --with-encoder).");
    if (!item.loc) item.loc = output(await predict("encode", { images: [item.image], ...labelInputs(1) }), "loc")[0];
    return item.loc;
  }

  // ---------------------------------------------------------------- drawing
  function drawImage(canvas, image) {
    const [height, width] = [image.length, image[0].length];
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d");
    const data = context.createImageData(width, height);
    const byte = (v) => Math.round(255 * Math.min(1, Math.max(0, v)));
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const pixel = image[y][x];
        const offset = 4 * (y * width + x);
        for (let c = 0; c < 3; c++) data.data[offset + c] = byte(pixel[pixel.length === 1 ? 0 : c]);
        data.data[offset + 3] = 255;
      }
    }
    context.putImageData(data, 0, 0);
    return canvas;
  }

  function showImages(container, images, onClick) {
    container.replaceChildren(...images.map((image, index) => {
      const canvas = drawImage(document.createElement("canvas"), image);
      if (onClick) {
        canvas.classList.add("pickable");
        canvas.title = "Send to the chosen target";
        canvas.addEventListener("click", () => onClick(index));
      }
      return canvas;
    }));
  }

  // ---------------------------------------------------------------- latent paths
  function lerp(a, b, steps) {
    return Array.from({ length: steps }, (_, i) => {
      const t = i / (steps - 1);
      return a.map((v, d) => (1 - t) * v + t * b[d]);
    });
  }

  // Spherical interpolation (Shoemake 1985): keeps a typical norm for a Gaussian prior.
  function slerp(a, b, steps) {
    const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    const norms = norm(a) * norm(b);
    if (norms === 0) return lerp(a, b, steps);
    const omega = Math.acos(Math.min(1, Math.max(-1, a.reduce((s, x, d) => s + x * b[d], 0) / norms)));
    if (Math.sin(omega) < 1e-6) return lerp(a, b, steps);
    return Array.from({ length: steps }, (_, i) => {
      const t = i / (steps - 1);
      const [wa, wb] = [Math.sin((1 - t) * omega) / Math.sin(omega), Math.sin(t * omega) / Math.sin(omega)];
      return a.map((v, d) => wa * v + wb * b[d]);
    });
  }

  // ---------------------------------------------------------------- samples
  async function sample() {
    const sampler = $("sampler").value || "prior";
    const inputs = {
      num_samples: GRID_SIZE,
      temperature: Number($("temperature").value),
      seed: Math.max(0, Math.floor(Number($("seed").value) || 0)),
      ...labelInputs(1),
    };
    const outputs = await predict(sampler === "prior" ? "sample" : `sample_${sampler}`, inputs);
    const [images, codes] = [output(outputs, "images"), outputs.z];
    state.grid = images.map((image, i) => ({ image, code: codes ? codes[i] : null }));
    showImages($("grid"), images, (index) => run(() => setSlot($("target").value, { ...state.grid[index] })));
    setStatus(`Sampled ${images.length} images (seed ${inputs.seed}, temperature ${inputs.temperature}).`);
  }

  // ---------------------------------------------------------------- slots
  const SLOT_CANVAS = { explore: "explore-source", a: "slot-a", b: "slot-b", score: "score-source" };

  async function setSlot(name, item) {
    state.slots[name] = item;
    drawImage($(SLOT_CANVAS[name] || `slot-${name}`), item.image);
    if (name === "explore") await startExplore(item);
    else if (name === "a" || name === "b") await interpolate(true);
    else if (name.startsWith("blend")) await blend();
    else if (name === "score") await score();
  }

  // ---------------------------------------------------------------- explore
  function chosenDims() {
    const choice = $("dims").value || "top";
    if (choice !== "top") {
      const start = Number(choice);
      return Array.from({ length: Math.min(MAX_SLIDERS, state.latentDim - start) }, (_, i) => start + i);
    }
    const dims = Array.from({ length: state.latentDim }, (_, d) => d);
    const kl = state.extras.kl_per_dim;
    if (kl && kl.length === state.latentDim) dims.sort((a, b) => kl[b] - kl[a]);
    return dims.slice(0, MAX_SLIDERS);
  }

  function buildSliders() {
    const kl = state.extras.kl_per_dim;
    $("sliders").replaceChildren(...chosenDims().map((d) => {
      const label = document.createElement("label");
      label.textContent = `z${d}${kl ? ` (KL ${kl[d].toFixed(2)})` : ""} `;
      const slider = Object.assign(document.createElement("input"), {
        type: "range", min: -SLIDER_RANGE, max: SLIDER_RANGE, step: 0.01, className: "dim",
      });
      slider.dataset.dim = d;
      slider.value = state.code ? state.code[d] : 0;
      slider.disabled = !state.code;
      slider.addEventListener("input", () => {
        state.code[d] = Number(slider.value);
        liveDecode();
      });
      label.append(slider);
      return label;
    }));
  }

  function buildAttributes() {
    const attributes = state.extras.attributes || [];
    if (!attributes.length) return;
    state.strengths = attributes.map(() => 0);
    $("attributes").replaceChildren(...attributes.map((attribute, i) => {
      const label = document.createElement("label");
      label.textContent = `${attribute.name} `;
      const slider = Object.assign(document.createElement("input"), {
        type: "range", min: -3, max: 3, step: 0.05, value: 0, className: "attribute",
      });
      slider.addEventListener("input", () => {
        state.strengths[i] = Number(slider.value);
        if (state.code) liveDecode();
      });
      label.append(slider);
      return label;
    }));
  }

  function editedCode() {
    const code = state.code.slice();
    (state.extras.attributes || []).forEach((attribute, i) => {
      attribute.vector.forEach((v, d) => { code[d] += state.strengths[i] * v; });
    });
    return code;
  }

  async function startExplore(item) {
    state.baseCode = (item.code || (await encodeItem(item))).slice();
    resetExplore();
  }

  function resetExplore() {
    if (!state.baseCode) return;
    state.code = state.baseCode.slice();
    state.strengths = state.strengths.map(() => 0);
    document.querySelectorAll("#attributes input").forEach((slider) => { slider.value = 0; });
    buildSliders();
    liveDecode();
  }

  async function decodeExplore() {
    const code = editedCode();
    drawImage($("decoded"), (await decode([code]))[0]);
    if (state.labelKind === "class" && state.labelSize > 0) {
      const labels = Array.from({ length: state.labelSize }, (_, i) => i);
      showImages($("labels-row"), await decode(labels.map(() => code), labels));
    }
  }

  // Slider moves arrive faster than round trips: keep one request in flight, then send the latest state.
  function coalesced(work) {
    let running = false;
    let again = false;
    return async () => {
      if (running) {
        again = true;
        return;
      }
      running = true;
      await run(async () => {
        do {
          again = false;
          await work();
        } while (again);
      }, true);
      running = false;
    };
  }
  const liveDecode = coalesced(() => decodeExplore());
  const liveBlend = coalesced(() => blend());

  // ---------------------------------------------------------------- interpolation and blending
  async function interpolate(quiet = false) {
    const [a, b] = [state.slots.a, state.slots.b];
    if (!a || !b) {
      if (!quiet) throw new Error("Pick or upload two images first: one as A, one as B.");
      return;
    }
    const steps = Math.min(32, Math.max(2, Math.floor(Number($("interp-steps").value) || 8)));
    const [za, zb] = [await encodeItem(a), await encodeItem(b)];
    const path = ($("interp-method").value === "spherical" ? slerp : lerp)(za, zb, steps);
    showImages($("strip"), await decode(path));
    setStatus(`Interpolated ${steps} steps (${$("interp-method").value}).`);
  }

  function buildBlendSlots() {
    $("blend-slots").replaceChildren(...[0, 1, 2, 3].map((i) => {
      const figure = document.createElement("figure");
      const canvas = Object.assign(document.createElement("canvas"), { id: `slot-blend${i}`, className: "slot", width: 1, height: 1 });
      const weight = Object.assign(document.createElement("input"), {
        type: "range", min: 0, max: 1, step: 0.05, value: 1, id: `weight-blend${i}`, className: "weight",
      });
      weight.title = "weight";
      weight.addEventListener("input", liveBlend);
      const caption = document.createElement("figcaption");
      caption.append(`slot ${i + 1}`, weight);
      figure.append(canvas, caption);
      return figure;
    }));
  }

  async function blend() {
    const entries = [0, 1, 2, 3].map((i) => [state.slots[`blend${i}`], Number($(`weight-blend${i}`).value)])
      .filter(([item]) => item);
    if (!entries.length) return;
    const total = entries.reduce((sum, [, w]) => sum + w, 0);
    if (total <= 0) throw new Error("Blend weights are all zero: raise at least one.");
    const mixed = Array(state.latentDim).fill(0);
    for (const [item, weight] of entries) {
      (await encodeItem(item)).forEach((v, d) => { mixed[d] += (weight / total) * v; });
    }
    drawImage($("blend-result"), (await decode([mixed]))[0]);
  }

  // ---------------------------------------------------------------- anomaly score
  async function score() {
    const item = state.slots.score;
    if (!has("score")) throw new Error("This export has no score signature (export it with --with-encoder).");
    const value = output(await predict("score", { images: [item.image], ...labelInputs(1) }), "score")[0];
    $("score").textContent = value.toFixed(2);
    const threshold = state.extras.threshold;
    const verdict = $("verdict");
    if (typeof threshold !== "number") {
      verdict.textContent = "No training-score threshold stored: no verdict.";
      verdict.className = "verdict";
      return;
    }
    const anomalous = value > threshold;
    verdict.textContent = anomalous
      ? `Anomalous: the score is above the threshold (${threshold.toFixed(2)}).`
      : `Normal: the score is within the threshold (${threshold.toFixed(2)}).`;
    verdict.className = `verdict ${anomalous ? "anomalous" : "normal"}`;
  }

  // ---------------------------------------------------------------- uploads
  function checkFile(file) {
    const typed = IMAGE_TYPES.includes(file.type) || /\.(png|jpe?g)$/i.test(file.name);
    if (!typed) throw new Error(`${file.name} is not a PNG or JPEG file.`);
    const limit = state.extras.max_upload_bytes || 8 * 1024 * 1024;
    if (file.size > limit) {
      throw new Error(`${file.name} is ${(file.size / 1048576).toFixed(1)} MB; the limit is ${(limit / 1048576).toFixed(0)} MB.`);
    }
  }

  // The studio server decodes and resizes with Pillow; without it (plain TF Serving) the browser does.
  async function uploadedImage(file) {
    checkFile(file);
    if (state.extras.upload) {
      const body = await fetchJson(state.extras.upload, { method: "POST", body: file });
      return body.image;
    }
    return browserDecode(file);
  }

  async function browserDecode(file) {
    const bitmap = await createImageBitmap(file).catch(() => {
      throw new Error(`${file.name} could not be decoded as an image.`);
    });
    const [height, width, channels] = state.shape;
    const canvas = Object.assign(document.createElement("canvas"), { width, height });
    const scale = Math.min(bitmap.width / width, bitmap.height / height);
    const [cropW, cropH] = [width * scale, height * scale];
    const context = canvas.getContext("2d");
    context.drawImage(bitmap, (bitmap.width - cropW) / 2, (bitmap.height - cropH) / 2, cropW, cropH, 0, 0, width, height);
    const rgba = context.getImageData(0, 0, width, height).data;
    return Array.from({ length: height }, (_, y) => Array.from({ length: width }, (_, x) => {
      const o = 4 * (y * width + x);
      const rgb = [rgba[o] / 255, rgba[o + 1] / 255, rgba[o + 2] / 255];
      return channels === 1 ? [0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]] : rgb;
    }));
  }

  async function onUpload(input) {
    const file = input.files[0];
    input.value = ""; // the same file chosen again must fire `change` again
    if (!file) return;
    let image;
    try {
      image = await uploadedImage(file);
    } catch (err) {
      throw new Error(`Upload of ${file.name} refused: ${err.message}`);
    }
    await setSlot($("target").value, { image });
    setStatus(`Uploaded ${file.name}.`);
  }

  // ---------------------------------------------------------------- download
  const SNAPSHOT_PARTS = [
    ["Samples", "#grid canvas"], ["Explore", "#explore-source, #decoded"], ["Every label", "#labels-row canvas"],
    ["Interpolation", "#strip canvas"], ["Blend", "#blend-slots canvas, #blend-result"], ["Anomaly score", "#score-source"],
  ];

  // One PNG of what is on screen: each panel's images in a row at 64 px, titled.
  function snapshot(cell = 64, gap = 4, titleHeight = 18) {
    const rows = SNAPSHOT_PARTS.map(([title, selector]) => [title, [...document.querySelectorAll(selector)]
      .filter((c) => c.width > 1 && c.offsetParent !== null)]).filter(([, canvases]) => canvases.length);
    const width = Math.max(320, ...rows.map(([, c]) => c.length * (cell + gap) + gap));
    const canvas = Object.assign(document.createElement("canvas"), { width, height: rows.length * (cell + titleHeight + gap) + gap });
    const context = canvas.getContext("2d");
    context.fillStyle = "#fff";
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.imageSmoothingEnabled = false;
    context.font = "13px sans-serif";
    rows.forEach(([title, canvases], r) => {
      const top = gap + r * (cell + titleHeight + gap);
      context.fillStyle = "#222";
      context.fillText(title, gap, top + 13);
      canvases.forEach((c, i) => context.drawImage(c, gap + i * (cell + gap), top + titleHeight, cell, cell));
    });
    return canvas.toDataURL("image/png");
  }

  function download() {
    const link = Object.assign(document.createElement("a"), { href: snapshot(), download: `${state.model || "studio"}.png` });
    document.body.append(link);
    link.click();
    link.remove();
  }

  // ---------------------------------------------------------------- setup
  function setOptions(select, values, labels = values) {
    select.replaceChildren(...values.map((value, i) => Object.assign(document.createElement("option"), { value, textContent: labels[i] })));
  }

  function setupControls() {
    const extras = state.extras;
    setOptions($("sampler"), extras.samplers || ["prior"]);
    $("sampler").disabled = $("sampler").options.length < 2;
    if (state.labelKind === "class") {
      const count = state.labelSize || 1;
      const values = Array.from({ length: count }, (_, i) => String(i));
      setOptions($("label"), values, values.map((v, i) => (extras.class_names || [])[i] || v));
      document.querySelectorAll(".conditional").forEach((e) => { e.hidden = false; });
    }
    if (state.latentDim > MAX_SLIDERS) {
      const starts = Array.from({ length: Math.ceil(state.latentDim / MAX_SLIDERS) }, (_, i) => String(i * MAX_SLIDERS));
      setOptions($("dims"), ["top", ...starts], [extras.kl_per_dim ? "top 16 by KL" : "first 16",
        ...starts.map((s) => `z${s}–z${Math.min(state.latentDim, Number(s) + MAX_SLIDERS) - 1}`)]);
      $("dims-chooser").hidden = false;
    }
    if (typeof extras.threshold === "number") {
      $("threshold").textContent = `${extras.threshold.toFixed(2)} (the ${Math.round(100 * extras.threshold_quantile)}th percentile of training scores)`;
    }
    buildSliders();
    buildAttributes();
    buildBlendSlots();
  }

  function bindEvents() {
    const temperature = () => { $("temperature-value").textContent = Number($("temperature").value).toFixed(2); };
    $("temperature").addEventListener("input", temperature);
    $("temperature").addEventListener("change", () => run(sample));
    $("seed").addEventListener("change", () => run(sample));
    $("new-seed").addEventListener("click", () => {
      $("seed").value = Math.floor(Math.random() * 1e9);
      run(sample);
    });
    $("sampler").addEventListener("change", () => run(sample));
    $("label").addEventListener("change", () => run(async () => {
      await sample();
      if (state.code) await decodeExplore();
    }));
    $("sample").addEventListener("click", () => run(sample));
    $("upload").addEventListener("change", () => run(() => onUpload($("upload"))));
    $("dims").addEventListener("change", buildSliders);
    $("reset").addEventListener("click", resetExplore);
    $("interpolate").addEventListener("click", () => run(() => interpolate()));
    $("interp-method").addEventListener("change", () => run(() => interpolate(true)));
    $("download").addEventListener("click", download);
  }

  async function loadModel() {
    state.extras = await fetchJson("studio/studio.json").catch(() => ({}));
    state.model = params.get("model") || state.extras.model;
    if (!state.model) throw new Error("No model name: open this page with ?model=NAME (and ?api=URL for a remote server).");
    const metadata = await fetchJson(`${state.api}/v1/models/${encodeURIComponent(state.model)}/metadata`);
    state.signatures = parseSignatures(metadata);
    const decoder = state.signatures.serving_default;
    if (!decoder) throw new Error(`Model ${state.model} has no serving_default signature.`);
    state.latentDim = decoder.inputs.z.shape[1];
    state.shape = (has("encode") ? state.signatures.encode.inputs.images : decoder.outputs.images).shape.slice(1);
    const label = decoder.inputs.label;
    if (label) {
      state.labelKind = label.dtype === "DT_FLOAT" ? "vector" : "class";
      const condition = state.extras.condition || {};
      state.labelSize = condition.size || Number(params.get("classes")) || (label.shape[1] > 0 ? label.shape[1] : 0);
    }
    $("model-info").textContent = `${state.model} v${metadata.model_spec.version || "?"} · latent ${state.latentDim} · `
      + `${state.shape.join("×")}${state.labelKind !== "none" ? ` · conditional (${state.labelKind})` : ""}`;
  }

  async function start() {
    await run(async () => {
      await loadModel();
      setupControls();
      bindEvents();
      await sample();
      state.ready = true;
    });
    document.body.dataset.ready = state.ready ? "yes" : "failed";
  }

  // For tests: the RGBA pixels of the `index`-th canvas matching `selector`.
  function pixels(selector, index = 0) {
    const canvas = document.querySelectorAll(selector)[index];
    return Array.from(canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data);
  }

  document.addEventListener("DOMContentLoaded", start);
  return { state, snapshot, pixels, idle: () => state.busy === 0 };
})();
