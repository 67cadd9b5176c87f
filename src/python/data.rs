//! Shims for `crate::data`: datasets, transforms and the loader as opaque handles.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::array::array_arg;
use super::tensor::PyTensor;
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use tch::{Device, Kind, Tensor};

use super::errors::guarded;
use super::options::{values, Opts};
use crate::data::dataset::{self, coco, fashion, listfile, nuswide, openimages, scenes, voc};
use crate::data::loader::{BatchIter, Loader};
use crate::data::loader_options::LoaderOptions;
use crate::data::transform::{randaugment, Op, Output, Pipeline, Size};
use crate::data::{decode, resize, Dataset, Image};
use crate::error::{Error, Result};

/// A dataset handle (labels in memory, images read on demand).
#[pyclass(frozen, module = "q2l._native")]
pub struct NativeDataset(pub(super) Arc<Dataset>);

pub(super) fn wrap(d: Result<Dataset>) -> Result<NativeDataset> {
    d.map(|d| NativeDataset(Arc::new(d)))
}

/// `[3, H, W]`, a channels-first view of the interleaved pixels (as torchvision's
/// `decode_jpeg` returns): a contiguous copy would cost as much as a quarter of the decode.
fn image_tensor(img: &Image) -> Result<Tensor> {
    Ok(Tensor::f_from_slice(&img.data)?
        .f_view([img.height as i64, img.width as i64, 3])?
        .f_permute([2, 0, 1])?)
}

fn tensor_image(t: &Tensor) -> Result<Image> {
    if t.kind() != Kind::Uint8 || t.device() != Device::Cpu || t.dim() != 3 || t.size()[2] != 3 {
        crate::bail!(
            "expected a uint8 CPU image of shape [H, W, 3], got {} {} on {}",
            crate::tensor::kind_name(t.kind()),
            crate::tensor::shape_str(&t.size()),
            crate::tensor::device_label(t)
        );
    }
    let (h, w) = (t.size()[0] as usize, t.size()[1] as usize);
    let mut data = vec![0u8; h * w * 3];
    t.f_contiguous()?.f_copy_data(&mut data, h * w * 3)?;
    Ok(Image::from_rgb(w, h, data))
}

#[pymethods]
impl NativeDataset {
    fn __len__(&self) -> usize {
        self.0.len()
    }

    #[getter]
    fn classes(&self) -> Vec<String> {
        self.0.classes().to_vec()
    }

    /// The `N x C` float32 target matrix (1, 0, -1).
    fn targets(&self) -> PyResult<PyTensor> {
        let t: Vec<f32> = self.0.targets().iter().map(|&v| v as f32).collect();
        let n = self.0.len() as i64;
        guarded(|| Ok(PyTensor(Tensor::f_from_slice(&t)?.f_view([n, -1])?)))
    }

    fn paths(&self) -> Option<Vec<String>> {
        self.0
            .paths()
            .map(|p| p.iter().map(|p| p.display().to_string()).collect())
    }

    /// Image `i` as uint8 `[3, H, W]`, and the warning of a lenient decode (or None).
    fn image(&self, py: Python<'_>, i: usize) -> PyResult<(PyTensor, Option<String>)> {
        let d = self.0.clone();
        py.allow_threads(move || {
            guarded(|| {
                let loaded = d.load(i)?;
                Ok((PyTensor(image_tensor(&loaded.image)?), loaded.warning))
            })
        })
    }

    /// Samples a shard reader left out under `on_error="skip"`: name and reason.
    #[getter]
    fn skipped(&self) -> Vec<(String, String)> {
        self.0
            .shards()
            .map_or_else(Vec::new, |s| s.skipped().to_vec())
    }

    fn objects(&self, i: usize) -> PyResult<Vec<(usize, [f32; 4])>> {
        guarded(|| self.0.objects(i))
    }

    /// A copy with other decoding options.
    #[pyo3(signature = (*, options))]
    fn with_decode_options(&self, options: Opts<decode::DecodeOptions>) -> NativeDataset {
        let mut d = (*self.0).clone();
        d.decode = options.0;
        NativeDataset(Arc::new(d))
    }

    /// A copy with `round(fraction * known)` known targets made unknown (-1), drawn from `seed`.
    #[pyo3(signature = (*, fraction, seed))]
    fn with_hidden_annotations(&self, fraction: f64, seed: u64) -> PyResult<NativeDataset> {
        guarded(|| wrap(self.0.with_hidden_annotations(fraction, seed)))
    }

    /// The decoding options, by name.
    fn decode_options(&self, py: Python<'_>) -> PyResult<PyObject> {
        values(py, &self.0.decode)
    }
}

#[pyfunction]
#[pyo3(signature = (*, annotations, image_dir, annotated_only))]
fn dataset_coco(
    py: Python<'_>,
    annotations: PathBuf,
    image_dir: PathBuf,
    annotated_only: bool,
) -> PyResult<NativeDataset> {
    py.allow_threads(|| guarded(|| wrap(coco::coco(&annotations, &image_dir, annotated_only))))
}

#[pyfunction]
#[pyo3(signature = (*, root, split, difficult))]
fn dataset_voc(
    py: Python<'_>,
    root: PathBuf,
    split: String,
    difficult: String,
) -> PyResult<NativeDataset> {
    py.allow_threads(|| guarded(|| wrap(voc::voc(&root, &split, difficult.parse()?))))
}

#[pyfunction]
#[pyo3(signature = (*, root, split, image_dir))]
fn dataset_nus_wide(
    py: Python<'_>,
    root: PathBuf,
    split: String,
    image_dir: PathBuf,
) -> PyResult<NativeDataset> {
    py.allow_threads(|| guarded(|| wrap(nuswide::nus_wide(&root, &split, &image_dir))))
}

#[pyfunction]
#[pyo3(signature = (*, labels_csv, image_dir, classes_csv=None))]
fn dataset_open_images(
    py: Python<'_>,
    labels_csv: PathBuf,
    image_dir: PathBuf,
    classes_csv: Option<PathBuf>,
) -> PyResult<NativeDataset> {
    let classes_csv = classes_csv.as_deref();
    py.allow_threads(|| {
        guarded(|| {
            wrap(openimages::open_images(
                &labels_csv,
                &image_dir,
                classes_csv,
            ))
        })
    })
}

#[pyfunction]
#[pyo3(signature = (*, path, image_root, classes=None, sep=';'))]
fn dataset_list(
    py: Python<'_>,
    path: PathBuf,
    image_root: PathBuf,
    classes: Option<Vec<String>>,
    sep: char,
) -> PyResult<NativeDataset> {
    py.allow_threads(|| guarded(|| wrap(listfile::list_file(&path, &image_root, classes, sep))))
}

/// `images`: uint8 `[N, H, W]` or `[N, H, W, 3]`; `targets`: `[N, C]` of 1, 0, -1.
#[pyfunction]
#[pyo3(signature = (*, images, targets, classes))]
fn dataset_memory(
    images: &Bound<'_, PyAny>,
    targets: &Bound<'_, PyAny>,
    classes: Vec<String>,
) -> PyResult<NativeDataset> {
    let (i, t) = (array_arg(images, "images")?, array_arg(targets, "targets")?);
    let (i, t) = (i.bytes("images")?, t.matrix("targets")?);
    let d = images
        .py()
        .allow_threads(move || guarded(|| wrap(dataset::from_arrays(i, t, classes))))?;
    Ok(d)
}

#[pyfunction]
#[pyo3(signature = (*, n, size, seed, split, min_objects, max_objects))]
fn dataset_scenes(
    py: Python<'_>,
    n: usize,
    size: usize,
    seed: u64,
    split: String,
    min_objects: usize,
    max_objects: usize,
) -> PyResult<NativeDataset> {
    py.allow_threads(|| {
        guarded(|| {
            wrap(scenes::generated(
                n,
                size,
                seed,
                &split,
                min_objects,
                max_objects,
            ))
        })
    })
}

#[pyfunction]
#[pyo3(signature = (*, root, split, n, size, grid, min_items, max_items, seed, item_classes, cell_labels))]
#[allow(clippy::too_many_arguments)]
fn dataset_fashion(
    py: Python<'_>,
    root: PathBuf,
    split: String,
    n: usize,
    size: usize,
    grid: usize,
    min_items: usize,
    max_items: usize,
    seed: u64,
    item_classes: Option<Vec<usize>>,
    cell_labels: bool,
) -> PyResult<NativeDataset> {
    let layout = fashion::Layout {
        len: n,
        size,
        grid,
        min_items,
        max_items,
        seed,
        item_classes,
        cell_labels,
    };
    py.allow_threads(|| {
        guarded(|| wrap(fashion::FashionScenes::open(&root, &split, layout)?.into_dataset()))
    })
}

/// A validated transform pipeline.
#[pyclass(frozen, module = "q2l._native")]
pub struct NativePipeline(Arc<Pipeline>);

/// A size as `q2l.data.transforms` takes it: an int (square) or `(height, width)`.
impl<'py> FromPyObject<'py> for Size {
    fn extract_bound(ob: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(side) = ob.extract::<usize>() {
            return Ok(Size {
                height: side,
                width: side,
            });
        }
        let [height, width] = ob.extract::<[usize; 2]>().map_err(|_| {
            Error::value(format!(
                "size must be an int or a (height, width) pair, got {ob}"
            ))
        })?;
        Ok(Size { height, width })
    }
}

/// An operation of `q2l.data.transforms`: the Rust struct of the class's name, read from the
/// object's attributes (the dataclass fields, same names).
impl<'py> FromPyObject<'py> for Op {
    fn extract_bound(ob: &Bound<'py, PyAny>) -> PyResult<Self> {
        let class = ob.get_type().name()?;
        Ok(match class.to_str()? {
            "Resize" => Op::Resize(ob.extract()?),
            "RandomResizedCrop" => Op::RandomResizedCrop(ob.extract()?),
            "MultiScaleCrop" => Op::MultiScaleCrop(ob.extract()?),
            "CenterCrop" => Op::CenterCrop(ob.extract()?),
            "HorizontalFlip" => Op::HorizontalFlip(ob.extract()?),
            "Cutout" => Op::Cutout(ob.extract()?),
            "RandAugment" => Op::RandAugment(ob.extract()?),
            _ => {
                return Err(
                    Error::value(format!("{ob} is not a q2l.data.transforms operation")).into(),
                )
            }
        })
    }
}

#[pymethods]
impl NativePipeline {
    #[new]
    #[pyo3(signature = (*, ops, output, mean=None, std=None))]
    fn new(
        ops: Vec<Op>,
        output: &str,
        mean: Option<[f32; 3]>,
        std: Option<[f32; 3]>,
    ) -> PyResult<Self> {
        guarded(|| {
            let output = Output::new(output, mean, std)?;
            Ok(NativePipeline(Arc::new(Pipeline::new(ops, output)?)))
        })
    }

    /// Output `(C, H, W)`.
    fn shape(&self) -> (usize, usize, usize) {
        self.0.shape()
    }

    /// Runs the pipeline on a uint8 `[H, W, 3]` image with a given random stream; returns
    /// the augmented uint8 `[3, H', W']` image (before normalisation).
    #[pyo3(signature = (image, *, seed))]
    fn augment(&self, py: Python<'_>, image: PyTensor, seed: u64) -> PyResult<PyTensor> {
        let (p, t) = (self.0.clone(), image.0);
        py.allow_threads(move || {
            guarded(|| {
                let mut rng = crate::data::rng::Rng::keyed(&[seed]);
                Ok(PyTensor(image_tensor(
                    &p.augment(tensor_image(&t)?, &mut rng)?,
                )?))
            })
        })
    }

    /// As `augment`, on an image file decoded only as far as the first operation needs (the
    /// loader's route); returns the image and the warning of a lenient decode.
    #[pyo3(signature = (*, path, seed, options))]
    fn augment_file(
        &self,
        py: Python<'_>,
        path: PathBuf,
        seed: u64,
        options: Opts<decode::DecodeOptions>,
    ) -> PyResult<(PyTensor, Option<String>)> {
        let (p, opts) = (self.0.clone(), options.0);
        py.allow_threads(move || {
            guarded(|| {
                let mut rng = crate::data::rng::Rng::keyed(&[seed]);
                let loaded =
                    decode::read_image_window(&path, &opts, &mut |w, h| p.window(w, h, &mut rng))?;
                let image = p.finish(loaded.image, &mut rng)?;
                Ok((PyTensor(image_tensor(&image)?), loaded.warning))
            })
        })
    }
}

/// A `.npy` file of floats as a CPU tensor of its dtype (any byte order; no pickle).
#[pyfunction]
#[pyo3(signature = (*, path))]
fn read_npy(py: Python<'_>, path: PathBuf) -> PyResult<PyTensor> {
    py.allow_threads(move || guarded(|| Ok(PyTensor(crate::data::npy::read(&path)?))))
}

/// Decodes a JPEG or PNG file to uint8 `[3, H, W]`, with the warning of a lenient decode.
#[pyfunction]
#[pyo3(signature = (*, path, options))]
fn decode_image(
    py: Python<'_>,
    path: PathBuf,
    options: Opts<decode::DecodeOptions>,
) -> PyResult<(PyTensor, Option<String>)> {
    let opts = options.0;
    py.allow_threads(move || {
        guarded(|| {
            let loaded = decode::read_image(&path, &opts)?;
            Ok((PyTensor(image_tensor(&loaded.image)?), loaded.warning))
        })
    })
}

/// PIL-compatible bilinear resize of a uint8 `[H, W, 3]` image, returned as `[3, h, w]`.
#[pyfunction]
#[pyo3(signature = (*, image, width, height))]
fn resize_image(image: PyTensor, width: usize, height: usize) -> PyResult<PyTensor> {
    guarded(|| {
        Size { height, width }.check("resize")?;
        let resized = resize::resize(&tensor_image(&image.0)?, width, height)?;
        Ok(PyTensor(image_tensor(&resized)?))
    })
}

/// One RandAugment operation (torchvision's name) with a signed magnitude.
#[pyfunction]
#[pyo3(signature = (*, image, name, magnitude, fill))]
fn randaugment_op(
    image: PyTensor,
    name: &str,
    magnitude: f64,
    fill: [u8; 3],
) -> PyResult<PyTensor> {
    let op: randaugment::Operation = name.parse()?;
    guarded(|| {
        Ok(PyTensor(image_tensor(&op.apply(
            tensor_image(&image.0)?,
            magnitude,
            fill,
        ))?))
    })
}

/// A loader over a dataset and a pipeline.
#[pyclass(frozen, module = "q2l._native")]
pub struct NativeLoader(Arc<Loader>);

#[pymethods]
impl NativeLoader {
    #[new]
    #[pyo3(signature = (*, dataset, pipeline, options, pin_memory))]
    fn new(
        dataset: &NativeDataset,
        pipeline: &NativePipeline,
        options: Opts<LoaderOptions>,
        pin_memory: Option<usize>,
    ) -> PyResult<Self> {
        let (d, p) = (dataset.0.clone(), pipeline.0.clone());
        guarded(|| {
            Ok(NativeLoader(Arc::new(Loader::new(
                d, p, options.0, pin_memory,
            )?)))
        })
    }

    fn __len__(&self) -> usize {
        self.0.len()
    }

    /// This rank's dataset indices for `epoch`, padding included.
    fn order(&self, epoch: u64) -> PyResult<Vec<usize>> {
        guarded(|| Ok(self.0.order(epoch).into_iter().map(|(_, i)| i).collect()))
    }

    /// `epoch`'s batches from batch `start` on.
    #[pyo3(signature = (epoch, *, start))]
    fn iter(&self, epoch: u64, start: usize) -> PyResult<NativeBatchIter> {
        guarded(|| Ok(NativeBatchIter(Mutex::new(Some(self.0.iter(epoch, start))))))
    }
}

/// One epoch's batches.
#[pyclass(frozen, module = "q2l._native")]
pub struct NativeBatchIter(Mutex<Option<BatchIter>>);

type PyBatch = (
    PyTensor,
    PyTensor,
    PyTensor,
    Vec<(usize, String)>,
    Vec<(usize, String)>,
);

#[pymethods]
impl NativeBatchIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<PyBatch> {
        let next = py.allow_threads(|| {
            guarded(|| {
                let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
                let item = guard.as_mut().and_then(Iterator::next);
                if !matches!(item, Some(Ok(_))) {
                    *guard = None;
                }
                Ok(item)
            })
        })?;
        match next {
            None => Err(PyStopIteration::new_err(())),
            Some(Err(e)) => Err(e.into()),
            Some(Ok(b)) => Ok((
                PyTensor(b.images),
                PyTensor(b.targets),
                PyTensor(Tensor::from_slice(&b.indices)),
                b.skipped,
                b.repaired,
            )),
        }
    }

    /// Stops the producer thread and frees prefetched batches.
    fn close(&self, py: Python<'_>) {
        py.allow_threads(|| {
            let it = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
            drop(it);
        });
    }
}

/// The seconds each data-pipeline stage took, summed over threads, since the last call (the
/// counters then restart); profiling is then on or off as `on` says. For the benchmark.
#[pyfunction]
#[pyo3(signature = (*, on))]
fn data_profile(on: bool) -> Vec<(&'static str, f64)> {
    crate::data::profile::take(on)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(data_profile, m)?)?;
    m.add_class::<NativeDataset>()?;
    m.add_class::<NativePipeline>()?;
    m.add_class::<NativeLoader>()?;
    m.add_class::<NativeBatchIter>()?;
    m.add_function(wrap_pyfunction!(dataset_coco, m)?)?;
    m.add_function(wrap_pyfunction!(dataset_voc, m)?)?;
    m.add_function(wrap_pyfunction!(dataset_nus_wide, m)?)?;
    m.add_function(wrap_pyfunction!(dataset_open_images, m)?)?;
    m.add_function(wrap_pyfunction!(dataset_list, m)?)?;
    m.add_function(wrap_pyfunction!(dataset_memory, m)?)?;
    m.add_function(wrap_pyfunction!(dataset_scenes, m)?)?;
    m.add_function(wrap_pyfunction!(dataset_fashion, m)?)?;
    m.add_function(wrap_pyfunction!(decode_image, m)?)?;
    m.add_function(wrap_pyfunction!(read_npy, m)?)?;
    m.add_function(wrap_pyfunction!(resize_image, m)?)?;
    m.add_function(wrap_pyfunction!(randaugment_op, m)?)?;
    m.add("SCENE_CLASSES", scenes::SCENE_CLASSES.to_vec())?;
    m.add("FASHION_CLASSES", fashion::FASHION_CLASSES.to_vec())?;
    m.add("VOC_CLASSES", voc::VOC_CLASSES.to_vec())?;
    m.add("DEFAULT_MAX_PIXELS", decode::DEFAULT_MAX_PIXELS)?;
    Ok(())
}
