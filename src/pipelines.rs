//! The user-editable encoder fragments in `pipelines/`.
//!
//! Each fragment is a gst-launch description of one encoder stage: raw video in,
//! H.264 out (`h264-{basic,plus,premium}.gst`), or raw audio in, AAC out
//! (`aac.gst`). They are read and checked once at start-up; a fragment that does
//! not parse, names a missing element, or produces the wrong format fails
//! start-up with the file and element named. User input never reaches a
//! description: jobs only set typed properties on the parsed elements.

use std::path::{Path, PathBuf};

use gst::prelude::*;

use crate::asset::VideoQuality;

/// The fragments shipped with reeld, used when the folder lacks a file.
const EMBEDDED: [(&str, &str); 4] = [
    (
        "h264-basic.gst",
        include_str!("../pipelines/h264-basic.gst"),
    ),
    ("h264-plus.gst", include_str!("../pipelines/h264-plus.gst")),
    (
        "h264-premium.gst",
        include_str!("../pipelines/h264-premium.gst"),
    ),
    ("aac.gst", include_str!("../pipelines/aac.gst")),
];

/// A fragment that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FragmentError {
    /// The file exists but cannot be read.
    #[error("cannot read pipeline fragment {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// GStreamer refused the description (syntax, or an element that is not installed).
    #[error("pipeline fragment {origin} does not parse: {message}")]
    Parse {
        /// The file, or `(embedded) NAME`.
        origin: String,
        /// GStreamer's message; it names a missing element.
        message: String,
    },
    /// The fragment parses but does not turn its input into the right format.
    #[error("pipeline fragment {origin} must take {input} and produce {output}: {problem}")]
    WrongFormat {
        /// The file.
        origin: String,
        /// The media type it must accept.
        input: &'static str,
        /// The media type it must produce.
        output: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// One checked fragment.
#[derive(Debug, Clone)]
pub struct Fragment {
    /// Where it came from, for messages.
    pub origin: String,
    /// The gst-launch description with comments removed.
    pub description: String,
}

impl Fragment {
    /// A fresh bin of this fragment, with ghost pads `sink` and `src`.
    pub fn instantiate(&self) -> Result<gst::Bin, gst::glib::Error> {
        gst::parse::bin_from_description(&self.description, true)
    }
}

/// All fragments reeld uses.
#[derive(Debug, Clone)]
pub struct Fragments {
    basic: Fragment,
    plus: Fragment,
    premium: Fragment,
    aac: Fragment,
}

impl Fragments {
    /// Reads the fragments from `dir` (falling back to the embedded copy of any
    /// file that is absent) and checks each one.
    pub fn load(dir: &Path) -> Result<Fragments, Vec<FragmentError>> {
        if let Err(e) = crate::graph::init() {
            return Err(vec![FragmentError::Parse {
                origin: "GStreamer".into(),
                message: e.to_string(),
            }]);
        }
        let mut errors = Vec::new();
        let mut loaded = Vec::new();
        for (name, embedded) in EMBEDDED {
            let path = dir.join(name);
            let (origin, text) = match std::fs::read_to_string(&path) {
                Ok(text) => (path.display().to_string(), text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    (format!("(embedded) {name}"), embedded.to_owned())
                }
                Err(source) => {
                    errors.push(FragmentError::Read { path, source });
                    continue;
                }
            };
            let fragment = Fragment {
                origin,
                description: strip_comments(&text),
            };
            let (input, output) = if name == "aac.gst" {
                ("audio/x-raw", "audio/mpeg")
            } else {
                ("video/x-raw", "video/x-h264")
            };
            match check(&fragment, input, output) {
                Ok(()) => loaded.push(fragment),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut it = loaded.into_iter();
        let mut next = || it.next().expect("one fragment per embedded file");
        Ok(Fragments {
            basic: next(),
            plus: next(),
            premium: next(),
            aac: next(),
        })
    }

    /// The elements the fragments name, each once, in order.
    pub fn element_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for fragment in [&self.basic, &self.plus, &self.premium, &self.aac] {
            for segment in fragment.description.split('!') {
                let Some(word) = segment.split_whitespace().next() else {
                    continue;
                };
                // Caps between elements (`video/x-h264,…`) are not elements.
                if word.contains(['/', '=', '(', '"']) || names.iter().any(|n| n == word) {
                    continue;
                }
                names.push(word.to_owned());
            }
        }
        names
    }

    /// The H.264 encoder for a quality level.
    pub fn video(&self, quality: VideoQuality) -> &Fragment {
        match quality {
            VideoQuality::Basic => &self.basic,
            VideoQuality::Plus => &self.plus,
            VideoQuality::Premium => &self.premium,
        }
    }

    /// The AAC encoder.
    pub fn audio(&self) -> &Fragment {
        &self.aac
    }
}

fn strip_comments(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses a fragment and checks that its pads accept `input` and can produce `output`.
fn check(
    fragment: &Fragment,
    input: &'static str,
    output: &'static str,
) -> Result<(), FragmentError> {
    let bin = fragment.instantiate().map_err(|e| FragmentError::Parse {
        origin: fragment.origin.clone(),
        message: e.to_string(),
    })?;
    let wrong = |problem: String| FragmentError::WrongFormat {
        origin: fragment.origin.clone(),
        input,
        output,
        problem,
    };
    let sink = bin
        .static_pad("sink")
        .ok_or_else(|| wrong("it has no unlinked input pad".into()))?;
    let src = bin
        .static_pad("src")
        .ok_or_else(|| wrong("it has no unlinked output pad".into()))?;
    if !sink
        .query_caps(None)
        .can_intersect(&gst::Caps::new_empty_simple(input))
    {
        return Err(wrong(format!(
            "its input accepts {}",
            sink.query_caps(None)
        )));
    }
    if !src
        .query_caps(None)
        .can_intersect(&gst::Caps::new_empty_simple(output))
    {
        return Err(wrong(format!(
            "its output produces {}",
            src.query_caps(None)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_fragments_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
        let f = Fragments::load(&dir).unwrap();
        assert!(
            f.video(VideoQuality::Plus)
                .description
                .starts_with("reeldx264enc")
        );
        assert!(f.audio().description.contains("avenc_aac"));
    }

    #[test]
    fn a_missing_element_is_named_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("h264-plus.gst"), "nosuchenc ! video/x-h264").unwrap();
        let errors = Fragments::load(dir.path()).unwrap_err();
        assert_eq!(errors.len(), 1);
        let text = errors[0].to_string();
        assert!(
            text.contains("h264-plus.gst") && text.contains("nosuchenc"),
            "{text}"
        );
    }

    #[test]
    fn a_fragment_of_the_wrong_kind_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("aac.gst"), "x264enc").unwrap();
        let errors = Fragments::load(dir.path()).unwrap_err();
        let text = errors[0].to_string();
        assert!(
            text.contains("aac.gst") && text.contains("audio/x-raw"),
            "{text}"
        );
    }
}
