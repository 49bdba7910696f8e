// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @notice Chainlink's read interface for price feeds, as consumers call it.
/// @dev Declared here because OpenZeppelin does not ship it and dnft installs no Chainlink package.
interface AggregatorV3Interface {
    function decimals() external view returns (uint8);

    function description() external view returns (string memory);

    function version() external view returns (uint256);

    function getRoundData(uint80 roundId_)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
}

/// @title PriceAggregator
/// @notice A Chainlink-style price feed for local chains: the owner pushes answers, each in a
///         new round, and the contract emits the same events as Chainlink's aggregators, so
///         dnft's oracle feed reads it as it would read a real one.
contract PriceAggregator is AggregatorV3Interface, Ownable {
    struct Round {
        int256 answer;
        uint64 startedAt;
        uint64 updatedAt;
    }

    /// @inheritdoc AggregatorV3Interface
    uint8 public immutable override decimals;
    /// @inheritdoc AggregatorV3Interface
    string public override description;
    /// @inheritdoc AggregatorV3Interface
    uint256 public constant override version = 1;

    /// @notice Id of the latest round; rounds are numbered from 1.
    uint80 public latestRound;
    mapping(uint80 roundId => Round) private _rounds;

    /// @notice Same signature as Chainlink's `AggregatorInterface.AnswerUpdated`.
    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);
    /// @notice Same signature as Chainlink's `AggregatorInterface.NewRound`.
    event NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt);

    /// @notice The round does not exist (Chainlink reverts with "No data present").
    error NoDataPresent(uint80 roundId);

    /// @param decimals_ Decimals of every answer (8 for USD pairs on Chainlink).
    /// @param description_ Pair name, such as "ETH / USD".
    /// @param initialAnswer Answer of round 1, so readers never see an empty feed.
    constructor(uint8 decimals_, string memory description_, int256 initialAnswer) Ownable(msg.sender) {
        decimals = decimals_;
        description = description_;
        _newRound(initialAnswer);
    }

    /// @notice Starts a new round with `answer`; emits `NewRound` and `AnswerUpdated`.
    function updateAnswer(int256 answer) external onlyOwner {
        _newRound(answer);
    }

    /// @inheritdoc AggregatorV3Interface
    function getRoundData(uint80 roundId_)
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        if (roundId_ == 0 || roundId_ > latestRound) revert NoDataPresent(roundId_);
        return _roundData(roundId_);
    }

    /// @inheritdoc AggregatorV3Interface
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return _roundData(latestRound);
    }

    function _newRound(int256 answer) private {
        uint80 roundId = latestRound + 1;
        // Each update is answered in the block that starts it, so both timestamps coincide.
        uint64 now_ = uint64(block.timestamp);
        _rounds[roundId] = Round({answer: answer, startedAt: now_, updatedAt: now_});
        latestRound = roundId;
        emit NewRound(roundId, msg.sender, now_);
        emit AnswerUpdated(answer, roundId, now_);
    }

    function _roundData(uint80 roundId_)
        private
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        Round storage round = _rounds[roundId_];
        return (roundId_, round.answer, round.startedAt, round.updatedAt, roundId_);
    }
}
