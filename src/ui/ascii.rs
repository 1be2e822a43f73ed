//! `BACKOUT_ASCII=1`: the frame, once drawn, is rewritten cell by cell into ASCII,
//! for terminals and fonts without box drawing or braille (a serial console, an old
//! bastion). The series stays `*` and the threshold `-`, so the two never look alike.

use ratatui::buffer::Buffer;

pub fn transliterate(buf: &mut Buffer) {
    for cell in buf.content.iter_mut() {
        let symbol = cell.symbol();
        if symbol.is_ascii() {
            continue;
        }
        let mut chars = symbol.chars();
        let replacement = match (chars.next(), chars.next()) {
            (Some(c), None) => ascii_of(c),
            _ => '?',
        };
        cell.set_char(replacement);
    }
}

fn ascii_of(c: char) -> char {
    match c {
        '─' | '━' | '═' | '—' | '–' => '-',
        '│' | '┃' | '║' | '▏' => '|',
        '┌' | '┐' | '└' | '┘' | '├' | '┤' | '┬' | '┴' | '┼' | '╭' | '╮' | '╯' | '╰' => {
            '+'
        }
        // The threshold line.
        '•' => '-',
        // A braille cell with any dot set is the series; the blank one is blank.
        '\u{2800}' => ' ',
        '\u{2801}'..='\u{28ff}' => '*',
        '░' => ':',
        '✓' => '+',
        '✗' => 'x',
        '→' | '›' => '>',
        '←' => '<',
        '↑' => '^',
        '↓' => 'v',
        '·' => '.',
        '…' => '~',
        '×' => 'x',
        _ => '?',
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::layout::Rect;

    #[test]
    fn every_cell_becomes_ascii_and_the_series_and_threshold_differ() {
        let mut buf = Buffer::empty(Rect::new(0, 0, 8, 1));
        buf.set_string(0, 0, "┌⣀•✓→é·a", ratatui::style::Style::default());
        transliterate(&mut buf);
        let row: String = buf.content.iter().map(|c| c.symbol()).collect();
        assert_eq!(row, "+*-+>?.a");
    }
}
