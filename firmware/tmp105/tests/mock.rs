//! The driver against scripted I2C transactions (`embedded-hal-mock`): the exact bytes on the
//! bus, the exact values returned, and bus errors surfacing as `Error::I2c`.

use embedded_hal::i2c::ErrorKind;
use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
use mend_tmp105::{Error, Tmp105};

const ADDR: u8 = 0x48;

fn init_transactions() -> Vec<Transaction> {
    vec![
        Transaction::write(ADDR, vec![0x01, 0x60]),
        Transaction::write_read(ADDR, vec![0x01], vec![0x60]),
    ]
}

#[test]
fn init_sets_12_bit_resolution() {
    let mut sensor = Tmp105::new(Mock::new(&init_transactions()), ADDR);
    sensor.init().unwrap();
    sensor.destroy().done();
}

#[test]
fn init_reports_a_config_that_did_not_stick() {
    let t = [
        Transaction::write(ADDR, vec![0x01, 0x60]),
        Transaction::write_read(ADDR, vec![0x01], vec![0x00]),
    ];
    let mut sensor = Tmp105::new(Mock::new(&t), ADDR);
    assert_eq!(
        sensor.init(),
        Err(Error::ConfigMismatch {
            wrote: 0x60,
            read: 0x00
        })
    );
    sensor.destroy().done();
}

#[test]
fn readings_are_exact_in_1_256_degc() {
    // (register bytes, value in 1/256 °C)
    let cases: [([u8; 2], i32); 7] = [
        ([0x34, 0x80], 13_440),    // 52.5 °C
        ([0x32, 0x10], 12_816),    // 50.0625 °C
        ([0x3C, 0x00], 15_360),    // 60 °C
        ([0x2D, 0x00], 11_520),    // 45 °C
        ([0x00, 0x00], 0),         // 0 °C, the power-up value
        ([0xFF, 0xF0], -16),       // -0.0625 °C
        ([0xE7, 0x00], -25 * 256), // -25 °C
    ];
    let mut t = init_transactions();
    for (bytes, _) in cases {
        t.push(Transaction::write_read(ADDR, vec![0x00], bytes.to_vec()));
    }
    let mut sensor = Tmp105::new(Mock::new(&t), ADDR);
    sensor.init().unwrap();
    for (_, bits) in cases {
        assert_eq!(sensor.read_celsius().unwrap().to_bits(), bits);
    }
    sensor.destroy().done();
}

#[test]
fn a_missing_sensor_is_an_i2c_error_not_a_panic() {
    let nack = ErrorKind::NoAcknowledge(embedded_hal::i2c::NoAcknowledgeSource::Address);
    let t = [
        Transaction::write(ADDR, vec![0x01, 0x60]).with_error(nack),
        Transaction::write_read(ADDR, vec![0x00], vec![0, 0]).with_error(nack),
        Transaction::write_read(ADDR, vec![0x00], vec![0x34, 0x80]),
    ];
    let mut sensor = Tmp105::new(Mock::new(&t), ADDR);
    assert_eq!(sensor.init(), Err(Error::I2c(nack)));
    assert_eq!(sensor.read_celsius(), Err(Error::I2c(nack)));
    // the bus recovers and the next reading is good
    assert_eq!(sensor.read_celsius().unwrap().to_bits(), 13_440);
    sensor.destroy().done();
}

#[test]
fn another_address_is_used_as_given() {
    let t = [Transaction::write_read(0x49, vec![0x00], vec![0x19, 0x00])];
    let mut sensor = Tmp105::new(Mock::new(&t), 0x49);
    assert_eq!(sensor.read_celsius().unwrap().to_bits(), 25 * 256);
    sensor.destroy().done();
}
