"""The assessment (考核): availability over periods, work orders (工单) with SLA clocks, the
contract's score and spot checks (抽查), from the evidence the state database keeps."""
