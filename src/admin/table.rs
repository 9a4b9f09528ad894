//! A text table whose columns are as wide as their longest cell, so every row lines up under
//! its header whatever the length of names, domains or addresses.

use std::fmt::Write;

/// Where a column's cells sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Align {
    Left,
    /// Numbers, so their digits line up.
    Right,
}

/// One line of a table: a row of cells, or a note printed under the row before it.
enum Line {
    Row(Vec<String>),
    Note(String),
}

/// A text table; columns are two spaces apart.
pub(super) struct Table {
    /// Header and alignment of each column; a table whose headers are all empty prints none.
    columns: Vec<(&'static str, Align)>,
    lines: Vec<Line>,
}

/// Space between two columns.
const GAP: &str = "  ";

impl Table {
    pub(super) fn new(columns: &[(&'static str, Align)]) -> Self {
        Self {
            columns: columns.to_vec(),
            lines: Vec::new(),
        }
    }

    /// Adds a row; missing cells are empty.
    pub(super) fn row(&mut self, cells: Vec<String>) {
        self.lines.push(Line::Row(cells));
    }

    /// Adds a line under the last row, indented, outside the columns.
    pub(super) fn note(&mut self, text: String) {
        self.lines.push(Line::Note(text));
    }

    pub(super) fn render(&self) -> String {
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .map(|(h, _)| h.chars().count())
            .collect();
        for line in &self.lines {
            if let Line::Row(cells) = line {
                for (w, cell) in widths.iter_mut().zip(cells) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let mut out = String::new();
        if self.columns.iter().any(|(h, _)| !h.is_empty()) {
            let header: Vec<String> = self.columns.iter().map(|(h, _)| h.to_string()).collect();
            self.write_row(&mut out, &header, &widths);
        }
        for line in &self.lines {
            match line {
                Line::Row(cells) => self.write_row(&mut out, cells, &widths),
                Line::Note(text) => {
                    let _ = writeln!(out, "    {text}");
                }
            }
        }
        out
    }

    fn write_row(&self, out: &mut String, cells: &[String], widths: &[usize]) {
        let mut line = String::new();
        for (i, ((_, align), width)) in self.columns.iter().zip(widths).enumerate() {
            let cell = cells.get(i).map_or("", String::as_str);
            if i > 0 {
                line.push_str(GAP);
            }
            let _ = match align {
                Align::Left => write!(line, "{cell:<width$}"),
                Align::Right => write!(line, "{cell:>width$}"),
            };
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}
