//! VOTable 1.4: the reader (UPLOAD documents into Arrow) and the writer (results as
//! TABLEDATA or BINARY2), side by side over one map of FIELD datatypes.

pub mod reader;
pub mod writer;

pub use reader::read_votable;

/// A VOTable FIELD `datatype` that Almagest reads or writes: the one map from names to
/// primitive types and their widths in BINARY/BINARY2. `bit`, `floatComplex` and
/// `doubleComplex` are not supported (the reader refuses them by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    Boolean,
    UnsignedByte,
    Short,
    Int,
    Long,
    Float,
    Double,
    Char,
    UnicodeChar,
}

impl Datatype {
    /// Every supported datatype, in the order of the VOTable standard's table.
    pub const ALL: [Datatype; 9] = [
        Datatype::Boolean,
        Datatype::UnsignedByte,
        Datatype::Short,
        Datatype::Int,
        Datatype::Long,
        Datatype::Char,
        Datatype::UnicodeChar,
        Datatype::Float,
        Datatype::Double,
    ];

    /// The value of the `datatype` attribute.
    pub fn name(&self) -> &'static str {
        match self {
            Datatype::Boolean => "boolean",
            Datatype::UnsignedByte => "unsignedByte",
            Datatype::Short => "short",
            Datatype::Int => "int",
            Datatype::Long => "long",
            Datatype::Float => "float",
            Datatype::Double => "double",
            Datatype::Char => "char",
            Datatype::UnicodeChar => "unicodeChar",
        }
    }

    /// The datatype named by a `datatype` attribute (case-sensitive, as the schema is).
    pub fn parse(name: &str) -> Option<Datatype> {
        Datatype::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Bytes of one element in BINARY/BINARY2.
    pub fn width(&self) -> usize {
        match self {
            Datatype::Boolean | Datatype::UnsignedByte | Datatype::Char => 1,
            Datatype::Short | Datatype::UnicodeChar => 2,
            Datatype::Int | Datatype::Float => 4,
            Datatype::Long | Datatype::Double => 8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Datatype;

    #[test]
    fn every_datatype_name_parses_back_and_others_do_not() {
        for d in Datatype::ALL {
            assert_eq!(Datatype::parse(d.name()), Some(d));
        }
        for other in ["bit", "floatComplex", "doubleComplex", "Int", "", "string"] {
            assert_eq!(Datatype::parse(other), None, "{other}");
        }
        assert_eq!(
            Datatype::ALL.map(|d| d.width()),
            [1, 1, 2, 4, 8, 1, 2, 4, 8]
        );
    }
}
