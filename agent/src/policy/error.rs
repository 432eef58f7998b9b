use std::fmt;

/// One thing wrong with the registry, located in its source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Registry file name as given to the parser (relative to the policy dir).
    pub file: String,
    /// 1-based line; 0 when the problem is not tied to a line.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

/// Why a registry could not be turned into a snapshot.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The registry has no files at all: refusing to compile an empty policy
    /// (it would deny everything, which is never what an operator meant).
    #[error("the policy registry has no files")]
    Empty,
    /// At least one file is not valid TOML or does not match the schema.
    #[error("{}", join(.0))]
    Parse(Vec<Problem>),
    /// The files parse but contradict each other or reference unknown names.
    #[error("{}", join(.0))]
    Invalid(Vec<Problem>),
    /// A policy test file is malformed.
    #[error("{}", join(.0))]
    Cases(Vec<Problem>),
}

impl Error {
    /// Every problem, for callers that list them one per line.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            Error::Empty => vec![Problem {
                file: String::new(),
                line: 0,
                message: self.to_string(),
            }],
            Error::Parse(p) | Error::Invalid(p) | Error::Cases(p) => p.clone(),
        }
    }
}

fn join(problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(&p.to_string());
    }
    out
}
