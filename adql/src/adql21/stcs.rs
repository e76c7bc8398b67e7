//! The STC-S strings of ADQL's `REGION('...')`: the subset TAP services support, read at
//! translation time so that a region given as a string prunes chunks like the equivalent
//! CIRCLE, BOX, POLYGON or POINT.
//!
//! Grammar read (words case-insensitive, separated by blanks or parentheses):
//!
//! ```text
//! region   := shape | combined
//! shape    := ("Circle" | "Box" | "Polygon" | "Position") [frame] [refpos] [flavor]
//!             numbers ["unit" "deg"]
//! combined := ("Union" | "Intersection") [frame] [refpos] [flavor] "(" region region+ ")"
//!           | "Not" "(" region ")"
//! frame    := "ICRS" | "UNKNOWNFrame" | "UNKNOWN"
//! flavor   := "SPHERICAL2"
//! ```
//!
//! `Circle ra dec radius`, `Box ra dec width height` (full widths, like ADQL's BOX),
//! `Position ra dec`, `Polygon ra1 dec1 ra2 dec2 ra3 dec3 ...`, all in degrees. Any other
//! frame, flavor or unit, or a malformed string, is an invalid argument; the message gives
//! the offending word and its character offset in the string.

use crate::shape::Shape;

/// A parsed STC-S region.
#[derive(Debug, Clone, PartialEq)]
pub enum Stc {
    /// A shape and its numbers (degrees), in the order of the matching ADQL constructor.
    Shape {
        kind: Shape,
        numbers: Vec<f64>,
    },
    Union(Vec<Stc>),
    Intersection(Vec<Stc>),
    Not(Box<Stc>),
}

impl Stc {
    /// The STC-S operator at the top, for messages (`None` for a shape).
    pub fn operator(&self) -> Option<&'static str> {
        match self {
            Stc::Shape { .. } => None,
            Stc::Union(_) => Some("Union"),
            Stc::Intersection(_) => Some("Intersection"),
            Stc::Not(_) => Some("Not"),
        }
    }
}

/// Why a string is not a region we read: the character offset (from 0) in the string and
/// the message.
#[derive(Debug, Clone, PartialEq)]
pub struct StcError {
    pub offset: usize,
    pub message: String,
}

/// Reads `text` as an STC-S region.
pub fn parse(text: &str) -> Result<Stc, StcError> {
    let tokens = tokenize(text);
    let mut parser = Parser {
        tokens,
        next: 0,
        end: text.chars().count(),
    };
    let region = parser.region()?;
    if let Some(token) = parser.peek() {
        return Err(StcError {
            offset: token.offset,
            message: format!("unexpected '{}' after the end of the region", token.text),
        });
    }
    Ok(region)
}

#[derive(Debug, Clone)]
struct Token {
    text: String,
    /// Offset in characters from the start of the string.
    offset: usize,
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    for (i, c) in text.chars().enumerate() {
        if c.is_whitespace() || c == '(' || c == ')' {
            if !current.is_empty() {
                tokens.push(Token {
                    text: std::mem::take(&mut current),
                    offset: start,
                });
            }
            if c != ' ' && !c.is_whitespace() {
                tokens.push(Token {
                    text: c.to_string(),
                    offset: i,
                });
            }
        } else {
            if current.is_empty() {
                start = i;
            }
            current.push(c);
        }
    }
    if !current.is_empty() {
        tokens.push(Token {
            text: current,
            offset: start,
        });
    }
    tokens
}

/// Frames that name a sky frame other than ICRS (recognised so that the message can say
/// the frame is not supported rather than that the word is unknown).
const OTHER_FRAMES: &[&str] = &[
    "FK4",
    "FK5",
    "J2000",
    "B1950",
    "ECLIPTIC",
    "GALACTIC",
    "GALACTIC_I",
    "GALACTIC_II",
    "SUPER_GALACTIC",
    "GEO_C",
    "GEO_D",
    "MAG",
    "GSE",
    "GSM",
    "SM",
    "HGC",
    "HGS",
    "HEEQ",
    "HRTN",
    "HPC",
    "HPR",
    "HCC",
    "LOCAL",
];

const REFERENCE_POSITIONS: &[&str] = &[
    "BARYCENTER",
    "GEOCENTER",
    "HELIOCENTER",
    "TOPOCENTER",
    "LSR",
    "LSRK",
    "LSRD",
    "GALACTIC_CENTER",
    "LOCAL_GROUP_CENTER",
    "EMBARYCENTER",
    "RELOCATABLE",
    "UNKNOWNREFPOS",
];

const OTHER_FLAVORS: &[&str] = &[
    "CARTESIAN1",
    "CARTESIAN2",
    "CARTESIAN3",
    "SPHERICAL3",
    "UNITSPHERE",
];

struct Parser {
    tokens: Vec<Token>,
    next: usize,
    /// Length of the string in characters, the offset reported at its end.
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn peek_upper(&self) -> Option<String> {
        self.peek().map(|t| t.text.to_ascii_uppercase())
    }

    fn error_here(&self, message: impl Into<String>) -> StcError {
        StcError {
            offset: self.peek().map_or(self.end, |t| t.offset),
            message: message.into(),
        }
    }

    fn region(&mut self) -> Result<Stc, StcError> {
        let Some(word) = self.peek_upper() else {
            return Err(self.error_here(
                "expected a region (Circle, Box, Polygon, Position, Union, Intersection or Not), \
                 found the end of the string",
            ));
        };
        let kind = Shape::ALL
            .into_iter()
            .find(|s| s.stcs_word().eq_ignore_ascii_case(&word));
        if let Some(kind) = kind {
            self.next += 1;
            self.frame_and_flavor()?;
            return self.shape(kind);
        }
        match word.as_str() {
            "UNION" | "INTERSECTION" => {
                self.next += 1;
                self.frame_and_flavor()?;
                let parts = self.parenthesized(&word)?;
                if parts.len() < 2 {
                    return Err(self.error_here(format!(
                        "{} needs at least 2 regions, got {}",
                        title(&word),
                        parts.len()
                    )));
                }
                Ok(if word == "UNION" {
                    Stc::Union(parts)
                } else {
                    Stc::Intersection(parts)
                })
            }
            "NOT" => {
                self.next += 1;
                let mut parts = self.parenthesized(&word)?;
                match parts.pop() {
                    Some(part) if parts.is_empty() => Ok(Stc::Not(Box::new(part))),
                    _ => Err(self.error_here("Not takes exactly 1 region")),
                }
            }
            _ => {
                let token = self.peek().map(|t| t.text.clone()).unwrap_or_default();
                Err(self.error_here(format!(
                    "'{token}' is not an STC-S region: expected Circle, Box, Polygon, Position, \
                     Union, Intersection or Not"
                )))
            }
        }
    }

    /// `( region ... )`, after the operator `word`.
    fn parenthesized(&mut self, word: &str) -> Result<Vec<Stc>, StcError> {
        if self.peek().is_none_or(|t| t.text != "(") {
            return Err(self.error_here(format!(
                "expected '(' after {}, before its regions",
                title(word)
            )));
        }
        self.next += 1;
        let mut parts = Vec::new();
        loop {
            match self.peek() {
                Some(t) if t.text == ")" => {
                    self.next += 1;
                    return Ok(parts);
                }
                None => {
                    return Err(self.error_here(format!(
                        "expected ')' closing the regions of {}",
                        title(word)
                    )))
                }
                Some(_) => parts.push(self.region()?),
            }
        }
    }

    /// The optional frame, reference position and flavor after a shape or operator name.
    fn frame_and_flavor(&mut self) -> Result<(), StcError> {
        if let Some(word) = self.peek_upper() {
            if matches!(word.as_str(), "ICRS" | "UNKNOWNFRAME" | "UNKNOWN") {
                self.next += 1;
            } else if OTHER_FRAMES.contains(&word.as_str()) {
                let token = self.peek().map(|t| t.text.clone()).unwrap_or_default();
                return Err(self.error_here(format!(
                    "coordinate frame '{token}' is not supported: only ICRS (or UNKNOWNFrame, or \
                     no frame) is"
                )));
            }
        }
        if self
            .peek_upper()
            .is_some_and(|w| REFERENCE_POSITIONS.contains(&w.as_str()))
        {
            self.next += 1;
        }
        if let Some(word) = self.peek_upper() {
            if word == "SPHERICAL2" {
                self.next += 1;
            } else if OTHER_FLAVORS.contains(&word.as_str()) {
                let token = self.peek().map(|t| t.text.clone()).unwrap_or_default();
                return Err(self.error_here(format!(
                    "coordinate flavor '{token}' is not supported: only SPHERICAL2 is"
                )));
            }
        }
        Ok(())
    }

    fn shape(&mut self, kind: Shape) -> Result<Stc, StcError> {
        let mut numbers = Vec::new();
        while let Some(token) = self.peek() {
            let Ok(value) = token.text.parse::<f64>() else {
                break;
            };
            // Rust also reads "inf" and "NaN", which are not STC-S numbers.
            if !value.is_finite() {
                return Err(self.error_here(format!("'{}' is not a finite number", token.text)));
            }
            numbers.push(value);
            self.next += 1;
        }
        if self.peek_upper().as_deref() == Some("UNIT") {
            self.next += 1;
            match self.peek_upper().as_deref() {
                Some("DEG") => self.next += 1,
                _ => {
                    let token = self
                        .peek()
                        .map_or("the end".to_string(), |t| t.text.clone());
                    return Err(
                        self.error_here(format!("unit '{token}' is not supported: only deg is"))
                    );
                }
            }
        }
        let n = numbers.len();
        if !kind.takes_numbers(n) {
            let expected = kind.numbers_expected();
            let found = match self.peek() {
                Some(t) if t.text != ")" && !is_region_word(&t.text) => {
                    format!("'{}'", t.text)
                }
                _ => format!("{n} number{}", if n == 1 { "" } else { "s" }),
            };
            let name = kind.stcs_word();
            return Err(self.error_here(format!("{name} expects {expected}, found {found}")));
        }
        Ok(Stc::Shape { kind, numbers })
    }
}

fn is_region_word(word: &str) -> bool {
    matches!(
        word.to_ascii_uppercase().as_str(),
        "CIRCLE" | "BOX" | "POLYGON" | "POSITION" | "UNION" | "INTERSECTION" | "NOT"
    )
}

/// `CIRCLE` -> `Circle`.
fn title(word: &str) -> String {
    let lower = word.to_ascii_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(kind: Shape, numbers: &[f64]) -> Stc {
        Stc::Shape {
            kind,
            numbers: numbers.to_vec(),
        }
    }

    #[test]
    fn shapes_frames_and_units() {
        assert_eq!(
            parse("CIRCLE ICRS 10 20 0.5"),
            Ok(shape(Shape::Circle, &[10.0, 20.0, 0.5]))
        );
        assert_eq!(
            parse("circle 359.9 -1e-1 .5"),
            Ok(shape(Shape::Circle, &[359.9, -0.1, 0.5]))
        );
        assert_eq!(
            parse("  Box UNKNOWNFrame GEOCENTER SPHERICAL2 1 2 3 4 unit deg "),
            Ok(shape(Shape::Box, &[1.0, 2.0, 3.0, 4.0]))
        );
        assert_eq!(
            parse("Position ICRS 1 2"),
            Ok(shape(Shape::Point, &[1.0, 2.0]))
        );
        assert_eq!(
            parse("POLYGON ICRS 0 0 10 0 10 10"),
            Ok(shape(Shape::Polygon, &[0.0, 0.0, 10.0, 0.0, 10.0, 10.0]))
        );
        assert_eq!(
            parse("Union ICRS (Position 1 2 Intersection (circle  1 2 3 box 1 2 3 4))"),
            Ok(Stc::Union(vec![
                shape(Shape::Point, &[1.0, 2.0]),
                Stc::Intersection(vec![
                    shape(Shape::Circle, &[1.0, 2.0, 3.0]),
                    shape(Shape::Box, &[1.0, 2.0, 3.0, 4.0]),
                ]),
            ]))
        );
        assert_eq!(
            parse("NOT (circle  1 2 3)"),
            Ok(Stc::Not(Box::new(shape(Shape::Circle, &[1.0, 2.0, 3.0]))))
        );
    }

    #[test]
    fn errors_name_the_word_and_offset() {
        let e = parse("Circle FK4 10 10 1").unwrap_err();
        assert_eq!(e.offset, 7);
        assert!(e.message.contains("frame 'FK4' is not supported"), "{e:?}");
        let e = parse("circle GALACTIC 1 2 3").unwrap_err();
        assert_eq!(e.offset, 7);
        let e = parse("Circle ICRS 10 10").unwrap_err();
        assert_eq!(e.offset, 17);
        assert!(e.message.contains("expects 3 numbers"), "{e:?}");
        let e = parse("Circle ICRS 10 10 x").unwrap_err();
        assert_eq!(e.offset, 18);
        assert!(e.message.contains("found 'x'"), "{e:?}");
        let e = parse("Polygon 1 2 3 4 5").unwrap_err();
        assert!(e.message.contains("even number"), "{e:?}");
        let e = parse("Ellipse ICRS 1 2 3 4 5").unwrap_err();
        assert_eq!(e.offset, 0);
        let e = parse("Circle 1 2 3 unit arcsec").unwrap_err();
        assert!(e.message.contains("unit 'arcsec'"), "{e:?}");
        let e = parse("Circle 1 2 3 Box 1 2 3 4").unwrap_err();
        assert_eq!(e.offset, 13);
        let e = parse("Union (Circle 1 2 3)").unwrap_err();
        assert!(e.message.contains("at least 2"), "{e:?}");
        let e = parse("Union (Circle 1 2 3 Box 1 2 3 4").unwrap_err();
        assert!(e.message.contains("')'"), "{e:?}");
        let e = parse("Circle 1 2 inf").unwrap_err();
        assert!(e.message.contains("finite"), "{e:?}");
        assert!(parse("").is_err());
    }
}
